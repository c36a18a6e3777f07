"""A protein structure the user brings (``--structure FILE``, ``--chain``): read with gemmi, mapped onto the
parent by sequence alignment.

``read_structure(path, parent, chain)`` gives a ``Structure``: per parent position (0-based, the parent's
length) the CA and CB coordinates, a side-chain direction and the pLDDT, NaN where the structure has no
coordinates (missing loops, tails the structure lacks, positions the alignment leaves out). Those positions are
*uncovered*: the structure features give no signal there.

- Format: PDB or mmCIF (also gzipped), read by gemmi (``gemmi.read_structure``); the format is told by the suffix,
  else by the content (``data_`` opens an mmCIF file, PDB record names a PDB file); anything else is refused.
- Several models (an NMR ensemble): the first is used, and the summary says so.
- Chain: ``chain`` when given, else the protein chain whose sequence aligns best to the parent.
- Numbering: never read as parent positions. The chain's residues (first conformer, insertion codes included,
  in file order) are aligned to the parent by ``gemmi.align_string_sequences`` (global, gemmi's default
  scoring); aligned pairs map a residue onto a parent position (a mismatch too: a structure of a mutant still
  places its site). The identity reported is matches / the shorter of the two sequences; under
  ``MIN_IDENTITY`` the structure is refused.
- pLDDT: an AlphaFold model's B-factor column. A model is recognised by its header (the word AlphaFold in the
  first 64 kB), or, in a file without an experimental method, by B-factors that are one value per residue, all
  within 0-100 (how AlphaFold and ColabFold write them). Else pLDDT is NaN (unknown).
- CB: the atom, or for glycine the ideal position from N, CA and C; a structure with CA atoms only uses CA for
  CB, and the side-chain direction from the neighbouring CAs (``ca_only``; the summary says which features
  fall back).
- Neighbours for burial: the CB (CA where none) of every amino-acid residue of the model, every chain, so that
  an interface buries a site as the protein's core does.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.pipeline.errors import DataError, input_file

MIN_IDENTITY = 0.7  # matches / shorter sequence; an unrelated chain scores 0.1-0.3
PDB_RECORDS = ("HEADER", "TITLE", "COMPND", "SOURCE", "REMARK", "ATOM", "HETATM", "MODEL", "CRYST1", "EXPDTA",
               "SEQRES", "KEYWDS", "AUTHOR", "REVDAT", "JRNL", "DBREF", "HELIX", "SHEET", "ORIGX1", "SCALE1")
CIF_SUFFIXES = (".cif", ".mmcif", ".cif.gz", ".mmcif.gz")
PDB_SUFFIXES = (".pdb", ".ent", ".pdb.gz", ".ent.gz")


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256 (hex): what a dataset records, and what a cache compares."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Structure:
    """A structure mapped onto the parent (see the module). Arrays are indexed by parent position (0-based)."""

    path: Path
    sha256: str
    chain: str
    ca: np.ndarray          # (L, 3), NaN where uncovered
    cb: np.ndarray          # (L, 3): CB, glycine's ideal CB, or CA in a CA-only structure
    direction: np.ndarray   # (L, 3) unit side-chain direction (CB - CA, or from the neighbouring CAs)
    plddt: np.ndarray       # (L,) 0-100, NaN where unknown
    neighbours: np.ndarray  # (M, 3) CB (else CA) of every amino-acid residue of the model
    identity: float
    residues: tuple[str, str]  # first and last residue of the chain that map (number + insertion code)
    models: int = 1
    alphafold: str | None = None  # why the B-factors are read as pLDDT (None: they are not)
    ca_only: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def covered(self) -> np.ndarray:
        return np.isfinite(self.ca[:, 0])

    def summary(self) -> str:
        """One line: which residues cover which parent positions, how many have no coordinates; then a line per
        note (first model of several, AlphaFold pLDDT, CA only)."""
        where = np.flatnonzero(self.covered)
        missing = len(self.ca) - len(where)
        line = (f"chain {self.chain} residues {self.residues[0]}-{self.residues[1]} cover parent positions "
                f"{where[0] + 1}-{where[-1] + 1} (identity {self.identity:.0%}); "
                f"{missing} position{'s' if missing != 1 else ''} ha{'ve' if missing != 1 else 's'} no coordinates")
        return "\n".join([line, *self.notes])


def _sniff_format(path: Path):
    import gemmi

    name = path.name.lower()
    if name.endswith(CIF_SUFFIXES):
        return gemmi.CoorFormat.Mmcif
    if name.endswith(PDB_SUFFIXES):
        return gemmi.CoorFormat.Pdb
    head = _head(path).decode("latin-1")
    lines = [line for line in head.splitlines() if line.strip()]
    if lines and lines[0].lstrip().lower().startswith("data_"):
        return gemmi.CoorFormat.Mmcif
    if lines and all(line[:6].strip().upper() in PDB_RECORDS or line.startswith("END") or line.startswith("TER")
                     for line in lines[:5]):
        return gemmi.CoorFormat.Pdb
    raise DataError("neither a PDB nor an mmCIF file (--structure takes .pdb, .cif, .ent, .mmcif, gzipped or not)",
                    path)


def _head(path: Path, size: int = 65536) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise DataError(f"cannot read the structure ({exc})", path) from None


def _read(path: Path):
    import gemmi

    fmt = _sniff_format(path)
    try:
        structure = gemmi.read_structure(str(path), format=fmt)
    except (RuntimeError, ValueError, IndexError) as exc:
        kind = "mmCIF" if fmt == gemmi.CoorFormat.Mmcif else "PDB"
        raise DataError(f"not a readable {kind} file ({str(exc).splitlines()[0] if str(exc) else exc})",
                        path) from None
    structure.setup_entities()
    return structure


def _one_letter(names: list[str]) -> str:
    import gemmi

    out = []
    for name in names:
        info = gemmi.find_tabulated_residue(name)
        letter = info.one_letter_code.upper() if info is not None and info.is_amino_acid() else "X"
        out.append(letter if letter.strip() and letter != "?" else "X")
    return "".join(out)


def _amino_acids(chain) -> list:
    """The chain's amino-acid residues (ATOM or HETATM, e.g. selenomethionine), first conformer, in file order."""
    import gemmi

    out = []
    for residue in chain.first_conformer():
        info = gemmi.find_tabulated_residue(residue.name)
        if info is not None and info.is_amino_acid() and residue.find_atom("CA", "*") is not None:
            out.append(residue)
    return out


def _align(residues: list, parent: str) -> tuple[dict[int, int], int, float]:
    """Parent position -> index in ``residues`` for every aligned pair; matches; identity over the shorter."""
    import gemmi

    seq = _one_letter([r.name for r in residues])
    result = gemmi.align_string_sequences(list(seq), list(parent), [], gemmi.AlignmentScoring())
    mapping, i, j, matches = {}, 0, 0, 0
    for count, op in _cigar(result.cigar_str()):
        if op == "M":
            for _ in range(count):
                mapping[j] = i
                matches += seq[i] == parent[j]
                i, j = i + 1, j + 1
        elif op == "I":  # residues of the structure the parent lacks (tags, other constructs)
            i += count
        else:  # "D": parent positions without a residue
            j += count
    return mapping, matches, matches / max(1, min(len(seq), len(parent)))


def _cigar(text: str) -> list[tuple[int, str]]:
    out, number = [], ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            out.append((int(number or 1), char))
            number = ""
    return out


def _label(residue) -> str:
    icode = residue.seqid.icode.strip()
    return f"{residue.seqid.num}{icode}"


def _position(residue, name: str) -> np.ndarray | None:
    atom = residue.find_atom(name, "*")
    return None if atom is None else np.array(atom.pos.tolist(), dtype=np.float64)


def _ideal_cb(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Glycine's virtual CB from its backbone (the standard constants of the ideal tetrahedral geometry)."""
    b, c_ = ca - n, c - ca
    a = np.cross(b, c_)
    return -0.58273431 * a + 0.56802827 * b - 0.54067466 * c_ + ca


def _alphafold(path: Path, structure, model) -> str | None:
    """Why the B-factors are pLDDT, or None (see the module)."""
    if b"alphafold" in _head(path).lower():
        return "the file's header names AlphaFold"
    if structure.meta.experiments:
        return None
    per_residue = []
    for chain in model:
        for residue in chain:
            values = {round(atom.b_iso, 2) for atom in residue}
            if len(values) != 1:
                return None
            per_residue.append(values.pop())
    if per_residue and min(per_residue) >= 0 and max(per_residue) <= 100 and len(set(per_residue)) > 1:
        return "no experimental method is recorded and the B-factors are one value per residue within 0-100"
    return None


def read_structure(path: str | Path, parent: str, chain: str | None = None) -> Structure:
    """The structure in ``path`` mapped onto ``parent`` (see the module); a DataError for a file that is not a
    structure, an empty model, a missing chain, a chain of HETATM records only, or a sequence that does not
    align to the parent."""
    path = input_file(path, "--structure").resolve()
    if not parent:
        raise DataError("a structure is mapped onto the dataset's parent sequence: give --parent", path)
    structure = _read(path)
    models = len(structure)
    if models == 0 or structure[0].count_atom_sites() == 0:
        raise DataError("the structure's first model holds no atoms (an empty model)", path)
    model = structure[0]
    notes = [f"{models} models (an NMR ensemble?): the first is used"] if models > 1 else []
    names = [c.name for c in model]
    if chain is not None:
        if chain not in names:
            raise DataError(f"chain {chain!r} is not in the structure; its chains: {', '.join(dict.fromkeys(names))}",
                            path)
        candidates = [c for c in model if c.name == chain]
    else:
        candidates = list(model)
    best = None
    for candidate in candidates:
        residues = _amino_acids(candidate)
        if not residues:
            continue
        mapping, matches, identity = _align(residues, parent)
        if best is None or matches > best[3]:
            best = (candidate, residues, mapping, matches, identity)
    if best is None:
        which = f"chain {chain!r} holds" if chain is not None else "the structure's chains hold"
        hets = sorted({r.name for c in candidates for r in c})
        raise DataError(f"{which} no amino-acid residue with a CA atom, only HETATM records "
                        f"({', '.join(hets[:6])}{', ...' if len(hets) > 6 else ''}): no protein to map", path)
    picked, residues, mapping, matches, identity = best
    if identity < MIN_IDENTITY:
        raise DataError(f"chain {picked.name}'s sequence ({len(residues)} residues) does not align to the "
                        f"{len(parent)}-residue parent: identity {identity:.0%} ({matches} matches), at least "
                        f"{MIN_IDENTITY:.0%} needed; is it the right protein, or the right --chain?", path)
    length = len(parent)
    ca, cb, direction = (np.full((length, 3), np.nan) for _ in range(3))
    plddt = np.full(length, np.nan)
    reason = _alphafold(path, structure, model)
    backbone = sum(1 for r in residues if r.find_atom("N", "*") is not None and r.find_atom("C", "*") is not None)
    ca_only = backbone == 0 and all(len(r) == 1 for r in residues)
    for j, i in mapping.items():
        residue = residues[i]
        ca[j] = _position(residue, "CA")
        found = _position(residue, "CB")
        if found is None and not ca_only:
            n, c = _position(residue, "N"), _position(residue, "C")
            found = _ideal_cb(n, ca[j], c) if n is not None and c is not None else None
        cb[j] = ca[j] if found is None else found
        if reason is not None:
            plddt[j] = residue.find_atom("CA", "*").b_iso
    direction = _directions(ca, cb, ca_only)
    if reason is not None:
        notes.append(f"pLDDT read from the B-factor column: {reason}")
    if ca_only:
        notes.append("only CA atoms: neighbour counts use CA for CB, and half-sphere exposure takes the side-chain "
                     "direction from the neighbouring CAs")
    mapped = sorted(mapping.items())
    first, last = residues[mapped[0][1]], residues[mapped[-1][1]]
    return Structure(path, file_sha256(path), picked.name, ca, cb, direction, plddt, _neighbours(model), identity,
                     (_label(first), _label(last)), models, reason, ca_only, notes)


def _directions(ca: np.ndarray, cb: np.ndarray, ca_only: bool) -> np.ndarray:
    """Unit vectors CA -> CB, or in a CA-only structure away from the mean of the two neighbouring CAs."""
    if ca_only:
        out = np.full_like(ca, np.nan)
        for j in range(len(ca)):
            around = [ca[k] for k in (j - 1, j + 1) if 0 <= k < len(ca) and np.isfinite(ca[k, 0])]
            if around and np.isfinite(ca[j, 0]):
                out[j] = ca[j] - np.mean(around, axis=0)
    else:
        out = cb - ca
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-6, out / norm, 0.0)


def _neighbours(model) -> np.ndarray:
    points = []
    for chain in model:
        for residue in _amino_acids(chain):
            found = _position(residue, "CB")
            points.append(found if found is not None else _position(residue, "CA"))
    return np.array(points, dtype=np.float64).reshape(-1, 3)


def parse_sites(text: str | None, parent: str, structure: Structure | None = None) -> tuple[int, ...]:
    """``--sites 41,145``: 1-based parent positions, each inside the parent (and with coordinates)."""
    if text is None or str(text).strip() == "":
        return ()
    items = [t.strip() for t in str(text).split(",") if t.strip()] if isinstance(text, str) else list(text)
    try:
        sites = tuple(int(t) for t in items)
    except (TypeError, ValueError):
        raise DataError(f"--sites {text!r}: expected comma-separated parent positions such as 41,145") from None
    outside = [s for s in sites if not 1 <= s <= len(parent)]
    if outside:
        raise DataError(f"--sites {text!r}: {', '.join(map(str, outside))} outside the parent (positions 1-"
                        f"{len(parent)})")
    if structure is not None:
        bare = [s for s in sites if not structure.covered[s - 1]]
        if bare:
            raise DataError(f"--sites {text!r}: parent position{'s' if len(bare) > 1 else ''} "
                            f"{', '.join(map(str, bare))} ha{'ve' if len(bare) > 1 else 's'} no coordinates in "
                            f"chain {structure.chain}", structure.path)
    return sites
