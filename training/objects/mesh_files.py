"""Reading car models from files (FBX, glTF/GLB, OBJ, AC3D) with assimp, into plain numpy arrays.

assimp (through the `assimp_py` wheel, which bundles the library) reads every format the shipped
packs and Debian's torcs-data use, so there is one reader instead of one per format; it also bakes
the node hierarchy into the vertices (wheels placed by their nodes) and triangulates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# assimp's aiTextureType: DIFFUSE (1) in OBJ/FBX, BASE_COLOR (12) in glTF.
_DIFFUSE_TEXTURE_KEYS = (1, 12)


class MeshFileError(RuntimeError):
    """A model file that cannot be read or holds no triangles."""


@dataclass(frozen=True)
class MeshPiece:
    """Triangles sharing one material: positions / normals (V, 3), uvs (V, 2) or None, faces (F, 3)."""

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray | None
    faces: np.ndarray
    colour: tuple[float, float, float]  # the material's diffuse colour, linear in [0, 1]
    texture: Path | None  # its diffuse texture, if it names one that exists


def _texture_of(material: dict, folder: Path) -> Path | None:
    textures = material.get("TEXTURES") or {}
    for key in _DIFFUSE_TEXTURE_KEYS:
        for name in textures.get(key, []):
            # FBX files often carry the author's absolute Windows path: keep the file name only.
            for candidate in (folder / name, folder / Path(name.replace("\\", "/")).name):
                if candidate.is_file():
                    return candidate
    return None


@lru_cache(maxsize=64)
def read_mesh_file(path: str) -> tuple[MeshPiece, ...]:
    """Every triangle of the file at `path`, in the file's own axes and units, grouped by material."""
    import assimp_py

    flags = (
        assimp_py.Process_Triangulate
        | assimp_py.Process_PreTransformVertices
        | assimp_py.Process_JoinIdenticalVertices
        | assimp_py.Process_GenSmoothNormals
    )
    file = Path(path)
    if not file.is_file():
        raise MeshFileError(f"{file}: no such model file")
    try:
        scene = assimp_py.import_file(str(file), flags)
    except Exception as e:  # assimp raises a bare RuntimeError with its parser's message
        raise MeshFileError(f"{file}: assimp could not read it: {e}") from e
    pieces = []
    for mesh in scene.meshes:
        positions = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(mesh.indices, dtype=np.int64).reshape(-1, 3)
        if len(faces) == 0:
            continue
        normals = np.asarray(mesh.normals, dtype=np.float64).reshape(-1, 3)
        uvs = None
        if mesh.texcoords is not None and len(mesh.texcoords) and len(mesh.texcoords[0]):
            uvs = np.asarray(mesh.texcoords[0], dtype=np.float64).reshape(len(positions), -1)[:, :2]
        material = scene.materials[mesh.material_index]
        colour = tuple(float(c) for c in material.get("COLOR_DIFFUSE", (1.0, 1.0, 1.0))[:3])
        pieces.append(MeshPiece(positions, normals, uvs, faces, colour, _texture_of(material, file.parent)))
    if not pieces:
        raise MeshFileError(f"{file}: no triangles")
    return tuple(pieces)
