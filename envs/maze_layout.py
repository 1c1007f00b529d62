"""A square grid maze: generation, wall rectangles and shortest paths between cells (numpy, pure).

The maze has ``cells x cells`` square cells of side ``cell_size`` metres, centred on the origin of the
ground plane. Cell ``(i, j)`` spans x in ``[-h + i s, -h + (i+1) s]`` and z in ``[-h + j s, -h + (j+1) s]``
(``h`` half the maze width, ``s`` the cell size); its flat index is ``i * cells + j``. Generation is a
randomised depth-first search (a "perfect" maze: exactly one route between any two cells), so every
cell is reachable; with ``extra_openings`` each remaining inner wall is removed with that probability (loops).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MazeLayout:
    """Passages of a grid maze.

    Attributes:
        cells: cells per side (n).
        cell_size: metres.
        open_x: (n-1, n) bool, passage between cells (i, j) and (i+1, j).
        open_z: (n, n-1) bool, passage between cells (i, j) and (i, j+1).
    """

    cells: int
    cell_size: float
    open_x: np.ndarray
    open_z: np.ndarray

    @property
    def half_width(self) -> float:
        return 0.5 * self.cells * self.cell_size

    @property
    def num_cells(self) -> int:
        return self.cells * self.cells

    def cell_centers(self) -> np.ndarray:
        """(n*n, 2) ground centre of every cell, by flat index."""
        i, j = np.meshgrid(np.arange(self.cells), np.arange(self.cells), indexing="ij")
        centers = np.stack([i.ravel(), j.ravel()], axis=1) * self.cell_size
        return centers + 0.5 * self.cell_size - self.half_width

    def neighbours(self) -> np.ndarray:
        """(n*n, 5) flat indices of each cell itself and of the cells open to it, padded with -1."""
        n = self.cells
        table = np.full((n * n, 5), -1, dtype=np.int64)
        table[:, 0] = np.arange(n * n)
        count = np.ones(n * n, dtype=np.int64)

        def link(a: int, b: int) -> None:
            table[a, count[a]] = b
            count[a] += 1

        for i, j in zip(*np.nonzero(self.open_x), strict=True):
            link(i * n + j, (i + 1) * n + j)
            link((i + 1) * n + j, i * n + j)
        for i, j in zip(*np.nonzero(self.open_z), strict=True):
            link(i * n + j, i * n + j + 1)
            link(i * n + j + 1, i * n + j)
        return table

    def cell_distances(self) -> np.ndarray:
        """(n*n, n*n) number of cell-to-cell moves on the shortest route (breadth-first search from every cell)."""
        table = self.neighbours()
        total = self.num_cells
        dist = np.full((total, total), -1, dtype=np.int64)
        for source in range(total):
            dist[source, source] = 0
            queue = deque([source])
            while queue:
                a = queue.popleft()
                for b in table[a, 1:]:
                    if b >= 0 and dist[source, b] < 0:
                        dist[source, b] = dist[source, a] + 1
                        queue.append(b)
        return dist

    def next_cells(self) -> np.ndarray:
        """(n*n, n*n) the first cell after ``a`` on a shortest route from ``a`` to ``b`` (``b`` itself when a == b).

        Ties (only possible with ``extra_openings``) go to the lowest flat index, so the table is deterministic.
        """
        table, dist = self.neighbours(), self.cell_distances()
        total = self.num_cells
        nxt = np.tile(np.arange(total), (total, 1))  # a == b: stay
        for a in range(total):
            options = table[a, 1:][table[a, 1:] >= 0]
            for b in range(total):
                if a != b:
                    nxt[a, b] = min(options, key=lambda c: (dist[c, b], c))
        return nxt

    def walls(self, thickness: float) -> np.ndarray:
        """(W, 4) wall rectangles ``[xmin, xmax, zmin, zmax]``: the outer frame and the closed inner edges.

        Collinear neighbouring inner walls are merged into one; walls overlap by ``thickness / 2`` at
        corners so there are no gaps.
        """
        n, s, h, t = self.cells, self.cell_size, self.half_width, 0.5 * thickness
        rects = [
            [-h - t, h + t, -h - t, -h + t],
            [-h - t, h + t, h - t, h + t],
            [-h - t, -h + t, -h - t, h + t],
            [h - t, h + t, -h - t, h + t],
        ]
        # Edge between (i, j) and (i+1, j) lies on x = -h + (i+1) s, spanning cell j in z.
        for i in range(n - 1):
            for start, stop in _runs(~self.open_x[i]):
                x = -h + (i + 1) * s
                rects.append([x - t, x + t, -h + start * s - t, -h + stop * s + t])
        for j in range(n - 1):
            for start, stop in _runs(~self.open_z[:, j]):
                z = -h + (j + 1) * s
                rects.append([-h + start * s - t, -h + stop * s + t, z - t, z + t])
        return np.array(rects, dtype=np.float64)

    def cell_of(self, xz: np.ndarray) -> np.ndarray:
        """Flat cell index of ground points (..., 2), clamped to the maze."""
        ij = np.clip(np.floor((np.asarray(xz) + self.half_width) / self.cell_size), 0, self.cells - 1).astype(np.int64)
        return ij[..., 0] * self.cells + ij[..., 1]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``flags`` (1-D bool) is set."""
    runs, start = [], None
    for k, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = k
        elif not flag and start is not None:
            runs.append((start, k))
            start = None
    return runs


def generate_maze(cells: int, cell_size: float, seed: int = 0, extra_openings: float = 0.0) -> MazeLayout:
    """A random perfect maze (depth-first search with backtracking), the same for the same arguments."""
    if int(cells) < 2 or cell_size <= 0:
        raise ValueError(f"a maze needs cells >= 2 and cell_size > 0, got {cells}, {cell_size}")
    if not 0.0 <= extra_openings <= 1.0:
        raise ValueError(f"extra_openings is a fraction in [0, 1], got {extra_openings}")
    n = int(cells)
    rng = np.random.default_rng(seed)
    open_x = np.zeros((n - 1, n), dtype=bool)
    open_z = np.zeros((n, n - 1), dtype=bool)
    visited = np.zeros((n, n), dtype=bool)
    stack = [(int(rng.integers(n)), int(rng.integers(n)))]
    visited[stack[0]] = True
    while stack:
        i, j = stack[-1]
        options = [(di, dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
                   if 0 <= i + di < n and 0 <= j + dj < n and not visited[i + di, j + dj]]
        if not options:
            stack.pop()
            continue
        di, dj = options[int(rng.integers(len(options)))]
        if di:
            open_x[min(i, i + di), j] = True
        else:
            open_z[i, min(j, j + dj)] = True
        visited[i + di, j + dj] = True
        stack.append((i + di, j + dj))
    if extra_openings > 0:
        open_x |= rng.random(open_x.shape) < extra_openings
        open_z |= rng.random(open_z.shape) < extra_openings
    return MazeLayout(n, float(cell_size), open_x, open_z)
