"""Motion-graph augmentation: random walks that branch between clips at matching poses.

Why: a Motion VAE can only be steered where its data branches. Small sets of short cyclic clips (the
DeepMimic motions in the pybullet wheel: a walk, four turns, a run) never branch: every pose has one
continuation, so the decoder learns to ignore z and no policy can steer it. Walking a motion graph
(Kovar et al. 2002) over those clips yields long sequences in which the same pose is followed sometimes
by a walk, sometimes by a left or a right turn: exactly the ambiguity the latent then has to carry.

A transition (clip a, frame i) -> (clip b, frame j) exists where the two poses match: mean joint distance
in the character frame plus 0.1 s of joint velocity difference below ``threshold_m``
(:func:`pose_distances`); j must have a following frame, and a frame never jumps to itself or to its own
next frame. At a jump the pose difference is blended away over ``blend_frames`` (an offset that decays
linearly, as in inertialization), then every walk is made kinematically consistent again by rebuilding it
through the skeleton (6D orientations -> local rotations -> forward kinematics -> frames), so bone lengths
stay exact.

Finding the transitions (:func:`find_transitions`) is a fixed-radius search over all frame pairs. Comparing
every pair is O(N^2 J): 43k frames took more than 30 minutes in Python loops, and even vectorised the
distances of 110k frames cost ~5e11 joint distances. The pose mismatch is a norm (a weighted sum of
per-joint Euclidean norms of the feature difference), so the triangle inequality holds and a ball tree
prunes exactly: a pair of tree nodes whose centres are further apart than the threshold plus both radii
holds no match, and a pair closer than the threshold minus both radii matches throughout (idle poses
match thousands of frames; those blocks are taken whole). Only the undecided frame pairs are measured. The
search runs in float32 torch with a safety margin around the threshold; pairs inside the margin are
measured again in float64 with :func:`pose_distances`' arithmetic, so the transitions are exactly those
of the all-pairs comparison (``find_transitions_reference``, kept for tests and the benchmark). Measured
(``benchmarks/bench_motion_graph.py``, one thread of a 2-core CPU): Bandai-Namco mirrored, 64k frames and
11.4M transitions, in 15 s, where the all-pairs loops run at 320 frames/s on a 3k-frame subset (114x slower
on the same frames) and would need about 70 minutes for the whole set.

The transitions are stored as compressed rows (:class:`Transitions`): millions of them (idle poses) would
not fit in nested Python lists.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from mocap.features import frames_to_motion, motion_to_frames
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton

VELOCITY_WEIGHT_S = 0.1
# Consecutive frames per leaf of the ball tree (measured on Bandai-Namco: 4 evaluates 4.5M frame pairs where 8
# evaluates 21M and 16 63M, for 3.1M matches among 20k frames).
LEAF_FRAMES = 4
# Frame pairs measured per vectorised step: 4096 x 2J x 3 floats (2 MB at J = 22) stay in cache (measured
# 25 % faster than 16384).
_CHUNK_PAIRS = 1 << 12
# Frame pairs enumerated per step of the leaf stage (bounds its index temporaries to ~100 MB).
_CHUNK_MEMBERS = 1 << 20
# Tree node pairs visited per block of the traversal.
_CHUNK_NODES = 1 << 20
# Balanced 2-means passes after each ball-tree split.
SPLIT_REFINEMENTS = 3
# torch threads of the search. It is bound by memory gathers: on 2 cores a second thread saves a third of the
# time (Bandai-Namco mirrored, 64k frames: 10 s against 15 s), but while any other process is busy every
# parallel step waits for a descheduled thread and the search ran 10-50x slower (measured: 542 s). One thread
# is the predictable choice for a preprocessing tool.
SEARCH_THREADS = 1


@dataclass(frozen=True, eq=False)
class Transitions:
    """Jump targets of every frame of a clip list, in compressed rows over the clips' frames in order.

    Frames are numbered globally: frame i of clip c is ``clip_starts[c] + i``. The targets of global frame g
    are ``targets[offsets[g]:offsets[g + 1]]`` (global numbers), sorted by clip, then frame.
    """

    clip_starts: np.ndarray  # (C + 1,) int64: first global frame of each clip, then the total N
    offsets: np.ndarray  # (N + 1,) int64
    targets: np.ndarray  # (M,) int32 (tens of millions for an hour of mocap: half the memory of int64)

    @property
    def count(self) -> int:
        return int(len(self.targets))

    def options(self, clip: int, frame: int) -> np.ndarray:
        """(K,) global frame numbers that (clip, frame) may jump to."""
        g = self.clip_starts[clip] + frame
        return self.targets[self.offsets[g] : self.offsets[g + 1]]

    def locate(self, g: int) -> tuple[int, int]:
        """Global frame number -> (clip, frame)."""
        clip = int(np.searchsorted(self.clip_starts, g, side="right")) - 1
        return clip, int(g - self.clip_starts[clip])

    def table(self) -> list[list[list[tuple[int, int]]]]:
        """For each clip and frame, the (clip, frame) pairs it may jump to (nested lists; for small data)."""
        clip_of = np.repeat(np.arange(len(self.clip_starts) - 1), np.diff(self.clip_starts))  # (N,)
        frame_of = np.arange(len(clip_of)) - self.clip_starts[clip_of]
        return [
            [
                [(int(clip_of[t]), int(frame_of[t])) for t in self.options(c, i)]
                for i in range(int(self.clip_starts[c + 1] - self.clip_starts[c]))
            ]
            for c in range(len(self.clip_starts) - 1)
        ]

    @classmethod
    def from_pairs(cls, lengths, source: np.ndarray, target: np.ndarray) -> Transitions:
        """From directed global pairs (any order; no duplicates) over clips of ``lengths`` frames."""
        clip_starts = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))])
        n = int(clip_starts[-1])
        order = np.argsort(source.astype(np.int64) * n + target, kind="stable")  # by source, then target
        counts = np.bincount(source, minlength=n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(clip_starts.astype(np.int64), offsets, target[order].astype(np.int32))


def pose_distances(frames_a: np.ndarray, frames_b: np.ndarray) -> np.ndarray:
    """(Ta, D), (Tb, D) -> (Ta, Tb) pose mismatch in metres (positions + 0.1 s of velocity)."""
    layout = PoseLayout.from_frame_size(frames_a.shape[-1])
    pa, pb = layout.positions(frames_a), layout.positions(frames_b)  # (Ta, J, 3), (Tb, J, 3)
    va, vb = layout.velocities(frames_a), layout.velocities(frames_b)
    dp = np.linalg.norm(pa[:, None] - pb[None], axis=-1).mean(-1)  # (Ta, Tb)
    dv = np.linalg.norm(va[:, None] - vb[None], axis=-1).mean(-1)
    return dp + VELOCITY_WEIGHT_S * dv


def find_transitions_reference(clips: list[np.ndarray], threshold_m: float) -> Transitions:
    """:func:`find_transitions` by comparing every frame with every frame, clip pair by clip pair.

    O(N^2 J) time: the definition the fast search is tested and benchmarked against.
    """
    starts = np.concatenate([[0], np.cumsum([len(c) for c in clips])])
    sources, targets = [], []
    for a, fa in enumerate(clips):
        for b, fb in enumerate(clips):
            # Jump targets need a following frame to continue from.
            d = pose_distances(fa, fb[:-1])
            for i, j in zip(*np.nonzero(d < threshold_m), strict=True):
                if a == b and j in (i, i + 1):
                    continue
                sources.append(starts[a] + i)
                targets.append(starts[b] + j)
    return Transitions.from_pairs([len(c) for c in clips], np.array(sources, dtype=np.int64),
                                  np.array(targets, dtype=np.int64))


def find_transitions(
    clips: list[np.ndarray], threshold_m: float, leaf_frames: int = LEAF_FRAMES, threads: int | None = SEARCH_THREADS
) -> Transitions:
    """Every (clip, frame) -> (clip, frame) jump whose pose mismatch is below ``threshold_m`` (module docstring).

    The same transitions as :func:`find_transitions_reference`, found with a ball tree in about N log N +
    (number of matches) distance evaluations instead of N^2. ``threads``: torch threads for the search (None:
    leave torch's setting); the result does not depend on it.
    """
    lengths = [len(c) for c in clips]
    frames = np.concatenate(clips).astype(np.float64, copy=False)  # (N, D)
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    pos, vel = layout.positions(frames), layout.velocities(frames)  # (N, J, 3) each
    with _torch_threads(threads):
        lo, hi = _matching_pairs(pos, vel, float(threshold_m), leaf_frames)  # (P,) each, lo < hi, global
    source, target = np.concatenate([lo, hi]), np.concatenate([hi, lo])  # both directions, int32
    del lo, hi
    clip_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    clip_of = np.repeat(np.arange(len(clips), dtype=np.int32), lengths)  # (N,)
    keep = target != clip_starts[clip_of[target] + 1] - 1  # a target needs a following frame
    keep &= ~((clip_of[source] == clip_of[target]) & (target == source + 1))  # not the clip's own next frame
    return Transitions.from_pairs(lengths, source[keep], target[keep])


def _matching_pairs(pos: np.ndarray, vel: np.ndarray, threshold: float, leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """All frame pairs (lo, hi) int32, lo < hi, whose :func:`pose_distances` is below ``threshold``.

    ``pos``, ``vel`` (N, J, 3) float64. A dual ball-tree traversal (module docstring) in float32 with a margin;
    pairs within the margin of the threshold are decided in float64.
    """
    import torch

    n, j = pos.shape[:2]
    if n < 2:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    # (N, 3, 2J) features: the mismatch is sum_k |f_a[:, k] - f_b[:, k]| / J over these 2J three-vectors.
    feat64 = np.concatenate([pos, VELOCITY_WEIGHT_S * vel], axis=1).transpose(0, 2, 1)
    feat = torch.from_numpy(np.ascontiguousarray(feat64, dtype=np.float32))
    # float32 rounds each feature by 6e-8 relative; summed over 2J norms that stays far below this margin.
    margin = 1e-4 * max(1.0, float(np.abs(feat64).max()))
    tree = _BallTree(feat, j, leaf)
    found: list[torch.Tensor] = []  # (2, P) int32 blocks of global frame pairs

    def keep(a, b):
        found.append(torch.stack((a, b)).to(torch.int32))

    # Node pairs (A <= B) to visit, depth first in blocks, so memory stays bounded however many survive.
    stack = [(0, torch.zeros(2, 1, dtype=torch.int64))]
    while stack:
        depth, pairs = stack.pop()
        centres, radii = tree.centres[depth], tree.radii[depth]
        dist = _distances(centres, pairs[0], centres, pairs[1], j)
        spread = radii[pairs[0]] + radii[pairs[1]]
        near = dist - spread < threshold + margin  # may hold a match
        whole = near & (dist + spread < threshold - margin)  # every frame pair matches
        for a, b, _ in tree.member_pairs(depth, pairs[:, whole]):
            keep(a, b)
        undecided = near & ~whole
        pairs, dist = pairs[:, undecided], dist[undecided]
        if depth < tree.depth:
            children = tree.child_pairs(depth, pairs)
            stack += [(depth + 1, children[:, s : s + _CHUNK_NODES]) for s in range(0, children.shape[1], _CHUNK_NODES)]
            continue
        # Leaves: bound each frame pair by its distances to the two leaf centres, then measure the rest.
        for sure_a, sure_b, a, b in tree.leaf_frame_pairs(pairs, dist, threshold, margin):
            keep(sure_a, sure_b)
            d = _distances(feat, a, feat, b, j)
            keep(a[d < threshold - margin], b[d < threshold - margin])
            band = (d - threshold).abs() <= margin
            if bool(band.any()):
                a, b = a[band], b[band]
                exact = torch.from_numpy(_pair_distances(pos, vel, a.numpy(), b.numpy()) < threshold)
                keep(a[exact], b[exact])
    both = torch.cat(found, dim=1)  # (2, P): each unordered pair of distinct frames once
    found.clear()
    return torch.minimum(both[0], both[1]).numpy(), torch.maximum(both[0], both[1]).numpy()


@contextmanager
def _torch_threads(threads: int | None):
    """Run the block with ``threads`` torch threads (None: unchanged), restoring the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pair_distances(pos: np.ndarray, vel: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) :func:`pose_distances` of frame pairs (a, b), with the same float64 arithmetic, so the same bits."""
    dp = np.linalg.norm(pos[a] - pos[b], axis=-1).mean(-1)  # (P,)
    dv = np.linalg.norm(vel[a] - vel[b], axis=-1).mean(-1)
    return dp + VELOCITY_WEIGHT_S * dv


def _distances(src_a, a, src_b, b, num_joints: int):
    """(P,) mismatch between rows ``src_a[a]`` and ``src_b[b]`` of (M, 3, 2J) float32 features (torch)."""
    import torch

    out = torch.empty(a.shape[0], dtype=src_a.dtype)
    for s in range(0, a.shape[0], _CHUNK_PAIRS):
        diff = torch.index_select(src_a, 0, a[s : s + _CHUNK_PAIRS])
        diff.sub_(torch.index_select(src_b, 0, b[s : s + _CHUNK_PAIRS]))  # (p, 3, 2J)
        diff.mul_(diff)
        squared = diff[:, 0] + diff[:, 1]  # (p, 2J); explicit adds beat a sum over the 3-long middle axis
        squared += diff[:, 2]
        out[s : s + _CHUNK_PAIRS] = squared.sqrt_().sum(dim=1)  # (p,): sum of the 2J norms
    return out / num_joints


class _BallTree:
    """A balanced binary ball tree over runs of consecutive frames, for the exact pruning of
    :func:`_matching_pairs`.

    The leaves are runs of ``leaf`` consecutive frames: neighbouring frames differ by millimetres (median
    0.006 on Bandai-Namco against a 0.06 threshold), so a run's frames sit close to its centre and the
    per-frame bounds at the leaves stay tight. Above them the runs are grouped by pose: the runs are
    reordered (``order``) so that node k at depth h holds runs ``[k 2^(depth-h), (k + 1) 2^(depth-h))``, each
    node split across the direction from its centre to its farthest run, at its capacity (a ball tree's usual
    split). A node's centre is the mean of its frames, its radius the largest distance of a frame to it,
    measured with the search's own distance so that the triangle-inequality bounds hold.
    """

    def __init__(self, features, num_joints: int, leaf: int):
        import torch

        n = features.shape[0]
        runs = -(-n // leaf)
        self.n, self.leaf = n, leaf
        self.depth = max(0, int(np.ceil(np.log2(runs))))
        run_of_frame = torch.arange(n) // leaf  # (N,)
        run_count = torch.bincount(run_of_frame, minlength=runs).to(features.dtype)
        run_centres = torch.zeros((runs, *features.shape[1:]), dtype=features.dtype)
        run_centres.index_add_(0, run_of_frame, features).div_(run_count[:, None, None])  # (R, 3, 2J)
        order = torch.arange(runs)  # tree position -> run
        self.centres, self.radii = [], []
        for h in range(self.depth + 1):
            width = 1 << (self.depth - h)  # runs per node
            nodes = -(-runs // width)
            node_of_run = torch.empty(runs, dtype=torch.int64)
            node_of_run[order] = torch.arange(runs) // width
            node = node_of_run[run_of_frame]  # (N,)
            count = torch.bincount(node, minlength=nodes).to(features.dtype)
            centre = torch.zeros((nodes, *features.shape[1:]), dtype=features.dtype).index_add_(0, node, features)
            centre /= count[:, None, None]
            offset = _distances(features, torch.arange(n), centre, node, num_joints)  # (N,) frame to its centre
            self.centres.append(centre)
            self.radii.append(torch.zeros(nodes, dtype=features.dtype).scatter_reduce_(0, node, offset, "amax"))
            if h == self.depth:
                self.leaf_offsets = offset
                break
            order = order[_split(run_centres[order], centre, width, num_joints)]
        # Tree position (run slot * leaf + k) -> global frame, or -1 past the end of the last run and up to the
        # root's capacity (so that every node's slots index it).
        frames = order[:, None] * leaf + torch.arange(leaf)  # (R, leaf)
        self.frame_at = torch.full((leaf << self.depth,), -1, dtype=torch.int64)
        self.frame_at[: frames.numel()] = torch.where(frames < n, frames, -1).reshape(-1)  # (R, leaf) -> (R leaf,)

    def child_pairs(self, depth: int, pairs):
        """Node pairs (2, P) at ``depth`` -> their child pairs (2, P') at depth + 1, upper triangle only."""
        import torch

        count = self.centres[depth + 1].shape[0]
        a = (2 * pairs[0, :, None] + torch.tensor([0, 0, 1, 1])).reshape(-1)
        b = (2 * pairs[1, :, None] + torch.tensor([0, 1, 0, 1])).reshape(-1)
        keep = (a < count) & (b < count) & (a <= b)
        return torch.stack((a[keep], b[keep]))

    def member_pairs(self, depth: int, pairs):
        """Frame pairs of node pairs (2, P) at ``depth``, in chunks: (a, b, index of the node pair) global frame
        numbers. Within one node each pair comes once (a before b in tree order)."""
        import torch

        size = self.leaf << (self.depth - depth)  # frame slots per node
        step = torch.arange(size)
        per_chunk = max(1, _CHUNK_MEMBERS // (size * size))
        for s in range(0, pairs.shape[1], per_chunk):
            p = pairs[:, s : s + per_chunk]
            slot_a = (p[0, :, None, None] * size + step[:, None]).expand(-1, size, size)  # (P, S, S)
            slot_b = (p[1, :, None, None] * size + step[None, :]).expand(-1, size, size)
            a, b = self.frame_at[slot_a], self.frame_at[slot_b]
            keep = (a >= 0) & (b >= 0) & ((p[0] < p[1])[:, None, None] | (slot_a < slot_b))
            owner = (torch.arange(p.shape[1])[:, None, None] + s).expand(-1, size, size)
            yield a[keep], b[keep], owner[keep]

    def leaf_frame_pairs(self, pairs, dist, threshold: float, margin: float):
        """Frame pairs of leaf pairs (2, P) whose centres are ``dist`` (P,) apart, sorted by the triangle
        inequality through the two leaf centres: chunks of (a, b) that surely match and (a, b) that may match.

        The bounds are formed for all leaf slots at once (a frame's distance to its leaf centre, NaN for empty
        slots so that no comparison keeps them); only the frame pairs that survive get numbers.
        """
        import torch

        size = self.leaf
        offsets = torch.full((len(self.frame_at),), float("nan"), dtype=self.leaf_offsets.dtype)
        valid = self.frame_at >= 0
        offsets[valid] = self.leaf_offsets[self.frame_at[valid]]
        offsets = offsets.view(-1, size)  # (leaves, S): per slot
        frames = self.frame_at.view(-1, size)
        upper = torch.ones(size, size, dtype=torch.bool).triu(1)  # within one leaf: slot i < slot j
        per_chunk = max(1, _CHUNK_MEMBERS // (size * size))
        for s in range(0, pairs.shape[1], per_chunk):
            pa, pb, d = pairs[0, s : s + per_chunk], pairs[1, s : s + per_chunk], dist[s : s + per_chunk]
            spread = offsets[pa][:, :, None] + offsets[pb][:, None, :]  # (P, S, S)
            once = (pa < pb)[:, None, None] | upper  # (P, S, S)
            sure = (d[:, None, None] + spread < threshold - margin) & once
            maybe = (d[:, None, None] - spread < threshold + margin) & once & ~sure
            out = []
            for mask in (sure, maybe):
                k, i, jj = mask.nonzero(as_tuple=True)
                out += [frames[pa[k], i], frames[pb[k], jj]]
            yield tuple(out)


def _split(x, centre, width: int, num_joints: int, refinements: int = SPLIT_REFINEMENTS):
    """Tree positions (R,) -> new order that splits every node of ``width`` runs into its two children.

    ``x`` (R, 3, 2J) run centres in tree order, ``centre`` (nodes, 3, 2J) node centres. Start from the ball-tree
    split (runs sorted along the direction from the node centre to its farthest run, the first ``width / 2``
    go left), then refine it like balanced 2-means: sort the runs by how much nearer they are to the left
    child's centre than to the right one's and cut at the capacity again.
    """
    import torch

    runs, nodes = x.shape[0], centre.shape[0]
    node = torch.arange(runs) // width  # (R,)
    slots = torch.arange(nodes)[:, None] * width  # (nodes, 1)

    def sort_within_nodes(key):
        padded = torch.full((nodes * width,), float("inf"), dtype=key.dtype)
        padded[:runs] = key
        rank = torch.sort(padded.view(nodes, width), dim=1, stable=True).indices  # (nodes, width)
        pos = (rank + slots).reshape(-1)
        return pos[pos < runs]

    offset = _distances(x, torch.arange(runs), centre, node, num_joints)  # (R,)
    padded = torch.full((nodes * width,), -1.0, dtype=x.dtype)
    padded[:runs] = offset
    far = padded.view(nodes, width).argmax(dim=1) + slots[:, 0]  # (nodes,) position of the farthest run
    axis = x[far] - centre  # (nodes, 3, 2J)
    perm = sort_within_nodes(((x - centre[node]) * axis[node]).sum(dim=(1, 2)))
    for _ in range(refinements):
        x_sorted = x[perm]
        side = (torch.arange(runs) % width >= width // 2).long()  # 0 left, 1 right, by position
        child = 2 * node + side
        sums = torch.zeros((2 * nodes, *x.shape[1:]), dtype=x.dtype).index_add_(0, child, x_sorted)
        halves = sums / torch.bincount(child, minlength=2 * nodes).clamp(min=1).to(x.dtype)[:, None, None]
        nearer_left = (_distances(x_sorted, torch.arange(runs), halves, 2 * node, num_joints)
                       - _distances(x_sorted, torch.arange(runs), halves, 2 * node + 1, num_joints))
        perm = perm[sort_within_nodes(nearer_left)]
    return perm


def graph_walk(
    clips: list[np.ndarray],
    transitions: Transitions,
    num_frames: int,
    rng: np.random.Generator,
    jump_probability: float = 0.1,
    blend_frames: int = 6,
) -> np.ndarray:
    """One random walk of ``num_frames`` frames (T, D), blended at jumps but not yet re-consistent."""
    layout = PoseLayout.from_frame_size(clips[0].shape[-1])
    c = int(rng.integers(len(clips)))
    i = int(rng.integers(len(clips[c]) - 1))
    out = np.empty((num_frames, clips[0].shape[-1]))
    offset = np.zeros(clips[0].shape[-1])
    blend_left = 0
    for t in range(num_frames):
        options = transitions.options(c, i)
        at_end = i + 1 >= len(clips[c])
        if len(options) and (at_end or rng.random() < jump_probability):
            b, j = transitions.locate(int(options[int(rng.integers(len(options)))]))
            old_next = clips[c][min(i + 1, len(clips[c]) - 1)]
            offset = old_next - clips[b][j + 1]
            offset[layout.root_delta] = 0.0  # deltas are relative: they need no alignment
            blend_left = blend_frames
            c, i = b, j + 1
        elif at_end:
            # A dead end (no matching pose anywhere): restart at a random frame.
            c = int(rng.integers(len(clips)))
            i = int(rng.integers(len(clips[c]) - 1))
            offset[:] = 0.0
            blend_left = 0
        else:
            i += 1
        weight = blend_left / blend_frames if blend_frames else 0.0
        out[t] = clips[c][i] + weight * offset
        blend_left = max(blend_left - 1, 0)
    return out


def graph_walks(
    clips: list[np.ndarray],
    skeleton: Skeleton,
    fps: float,
    total_frames: int,
    *,
    walk_frames: int = 600,
    threshold_m: float = 0.06,
    jump_probability: float = 0.1,
    blend_frames: int = 6,
    seed: int = 0,
) -> list[np.ndarray]:
    """Random motion-graph walks over ``clips`` (each (T, D)) adding up to ``total_frames`` frames.

    Returns kinematically consistent frames (rebuilt through ``skeleton``). Raises ValueError when no clip
    has a transition at ``threshold_m``, naming the threshold to raise.
    """
    transitions = find_transitions(clips, threshold_m)
    if transitions.count == 0:
        raise ValueError(
            f"motion graph: no two poses match within {threshold_m} m; raise --graph-threshold or add clips"
        )
    rng = np.random.default_rng(seed)
    walks = []
    remaining = total_frames
    while remaining > 1:
        n = min(walk_frames, remaining)
        raw = graph_walk(clips, transitions, n, rng, jump_probability, blend_frames)
        motion = frames_to_motion(raw, skeleton, fps)
        walks.append(motion_to_frames(motion)[0])
        remaining -= n
    return walks
