"""The interactive app behind ``play.py``: live steering of Motion VAE characters, drawn with :mod:`viewer`.

Modules: ``simulation`` (the characters, their task and controller, the user's commands; no pyglet),
``interactive`` (the window, devices, fixed-rate loop and video recording), ``inputs`` (key / gamepad / mouse
bindings), ``input_script`` (record and replay a session's inputs), ``hud`` (the HUD's text),
``motion_capture`` (a session's motion out as BVH). It talks to the environments only through their public
API (``envs.vec_env`` and ``envs.tasks.base``), and the viewer never sees the environment: the app hands it
plain data.
"""
