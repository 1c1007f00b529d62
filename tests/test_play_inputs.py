"""play.py's input layer without a window: key/stick mapping, gamepad absence, input scripts, the path hook."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.input_script import Held, InputRecorder, InputScript, ScriptError, StepInput
from app.inputs import (
    Control,
    Gamepads,
    MouseGesture,
    PadState,
    combine,
    command_speed,
    keyboard_move,
    stick_move,
    world_direction,
)

REPO = Path(__file__).resolve().parents[1]

SPEEDS = {"walk": 1.0, "run": 2.0, "dash": 3.0}


def test_keys_give_unit_moves_and_opposites_cancel():
    assert keyboard_move({"W"}) == (0.0, 1.0)
    assert keyboard_move({"DOWN"}) == (0.0, -1.0)
    x, y = keyboard_move({"W", "A"})
    assert x == pytest.approx(-math.sqrt(0.5)) and y == pytest.approx(math.sqrt(0.5))
    assert keyboard_move({"A", "D"}) == (0.0, 0.0)
    control = combine({"W", "LSHIFT"})
    assert control.run and not control.stop and command_speed(control, SPEEDS) == 2.0
    stop = combine({"SPACE"})
    assert stop.active and command_speed(stop, SPEEDS) == 0.0
    assert not combine(set()).active


def test_moves_are_relative_to_the_camera():
    # Camera behind a character that faces +z: its eye is at -z (azimuth pi). W walks +z, A walks +x (the
    # character's left, our convention), D walks -x.
    fwd = world_direction((0.0, 1.0), math.pi)
    left = world_direction((-1.0, 0.0), math.pi)
    right = world_direction((1.0, 0.0), math.pi)
    np.testing.assert_allclose(fwd, (0.0, 1.0), atol=1e-12)
    np.testing.assert_allclose(left, (1.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(right, (-1.0, 0.0), atol=1e-12)
    # Seen from +x (azimuth pi/2), forward is -x.
    np.testing.assert_allclose(world_direction((0.0, 1.0), math.pi / 2), (-1.0, 0.0), atol=1e-12)
    assert world_direction((0.0, 0.0), 1.0) is None


def test_stick_dead_zone_and_rescaling():
    assert stick_move(0.1, -0.1) == (0.0, 0.0)
    np.testing.assert_allclose(stick_move(1.0, 0.0), (1.0, 0.0))
    just_out = stick_move(0.21, 0.0)
    assert 0 < just_out[0] < 0.02, "the command starts smoothly at the dead zone's edge"
    half = stick_move(0.0, 0.6)
    assert half[0] == 0 and half[1] == pytest.approx(0.5)
    both = combine({"W"}, stick=(1.0, 0.0))
    assert math.hypot(*both.move) == pytest.approx(1.0), "keyboard and stick add, clamped to full speed"
    assert command_speed(Control((0.0, 0.5)), SPEEDS) == pytest.approx(0.5)


def test_no_gamepad_is_a_message_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyglet.input", None)  # as when pyglet.input cannot be imported (headless)
    pads = Gamepads()
    assert pads.status.startswith("no gamepad") and "pyglet.input unavailable" in pads.status
    assert pads.read() == PadState()
    pads.close()


def test_click_and_drag_gestures():
    g = MouseGesture()
    assert g.release(0, 0) is None
    g.press(100, 100)
    g.drag(102, 101)
    assert g.release(102, 101) == ("click", (100.0, 100.0))
    g.press(0, 0)
    for x in range(0, 200, 5):
        g.drag(x, x)
    kind, points = g.release(200, 200)
    assert kind == "stroke" and points[0] == (0.0, 0.0) and points[-1] == (200.0, 200.0) and len(points) > 10


def test_input_script_round_trip(tmp_path):
    rec = InputRecorder(seed=7, task="joystick", characters=2, fps=30.0)
    steps = [StepInput(Held(("W",))), StepInput(Held(("W",))),
             StepInput(Held(("A", "W"), (0.5, 0.25), True), camera={"azimuth": 1.5},
                       actions=[{"task": "target"}, {"click": [1.0, 2.5]}]),
             StepInput(Held(), actions=[{"path": [[0.0, 0.0], [1.0, 1.0]]}, {"reset": True}]),
             StepInput(Held())]
    for s in steps:
        rec.add(s)
    path = rec.save(tmp_path / "inputs.json")
    data = json.loads(path.read_text())
    assert data["seed"] == 7 and data["steps"] == 5 and data["characters"] == 2
    script = InputScript.load(path)
    player = script.player()
    replayed = [player.next_input() for _ in range(5)]
    for original, again in zip(steps, replayed, strict=True):
        assert again.held == original.held
        assert again.actions == original.actions
        assert again.camera == original.camera
    assert player.finished
    assert player.next_input().held == Held(), "held inputs are released after the script"


@pytest.mark.parametrize("change, message", [
    ({"format": "something"}, "format"),
    ({"task": "dance"}, "'task'"),
    ({"events": [{"step": 3, "keys": ["W"]}, {"step": 1, "keys": []}]}, "after step 3"),
    ({"events": [{"step": 0, "jump": True}]}, "unknown field"),
    ({"events": [{"step": 0, "click": [1.0]}]}, r"events\[0\]\.click"),
    ({"events": [{"step": 0, "stick": [1.0, 1.0]}]}, "unit circle"),
    ({"seed": -1}, "'seed'"),
])
def test_bad_input_scripts_name_the_field(tmp_path, change, message):
    doc = {"format": "mvae-play-input", "version": 1, "seed": 0, "task": "joystick", "characters": 1, "fps": 30.0,
           "steps": 10, "events": []}
    doc.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ScriptError, match=message) as err:
        InputScript.load(path)
    assert str(path) in str(err.value)


def test_missing_and_garbled_scripts(tmp_path):
    with pytest.raises(ScriptError, match="no such file"):
        InputScript.load(tmp_path / "absent.json")
    (tmp_path / "garbled.json").write_text("{not json")
    with pytest.raises(ScriptError, match="not readable JSON"):
        InputScript.load(tmp_path / "garbled.json")


def test_shipped_demo_script_is_valid():
    script = InputScript.load(REPO / "assets" / "demos" / "joystick_tour.json")
    assert script.steps == 20 * 30 and script.task == "joystick"
    assert any("click" in e for e in script.events) and any("A" in e.get("keys", []) for e in script.events)


def test_path_follow_set_path_follows_a_drawn_stroke():
    from envs import MotionVecEnv, ToyManifold

    env = MotionVecEnv(2, "path_follow", ToyManifold(), array_backend="torch", autoreset_mode="Disabled")
    env.reset(seed=0)
    stroke = torch.tensor([[0.0, 0.0], [0.0, 3.0], [3.0, 3.0]])
    env.task.set_path(stroke, mask=torch.tensor([True, False]))
    other = env.task.path[1].clone()
    ahead = env.task.lookahead()[0]  # (K, 2): starts at the stroke's first point, moves along it
    np.testing.assert_allclose(ahead[0].numpy(), [0.0, 0.0], atol=1e-5)
    assert float(ahead[1, 1]) == pytest.approx(env.task.path_speed * env.task.lookahead_seconds, abs=1e-3)
    assert float(env.task.length[0]) == pytest.approx(6.0 + math.sqrt(18.0), rel=1e-3), "closed back to the start"
    env.step_tensors(torch.zeros(2, 4))
    assert torch.equal(env.task.path[1], other), "the masked-out character keeps its path"
    with pytest.raises(ValueError, match="P >= 2"):
        env.task.set_path(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="no length"):
        env.task.set_path(torch.zeros(3, 2))


def test_shift_runs_shift_ctrl_dashes_q_strafes_and_the_pad_does_the_same():
    dash = combine({"W", "LSHIFT", "LCTRL"})
    assert dash.run and dash.dash and command_speed(dash, SPEEDS) == 3.0
    assert not combine({"W", "LCTRL"}).dash, "Ctrl alone does not dash"
    strafe = combine({"A", "Q"})
    assert strafe.strafe and strafe.moving and command_speed(strafe, SPEEDS) == 1.0
    pad = combine(set(), stick=(0.0, 0.5), pad_dash=True, pad_strafe=True)
    assert pad.dash and pad.strafe and command_speed(pad, SPEEDS) == pytest.approx(1.5)
    assert not combine(set()).active, "nothing held: not steering (the app then stops a steered character)"
