"""`mimo data fetch` against a local HTTP server on 127.0.0.1 serving files the test makes."""
import contextlib
import functools
import hashlib
import io
import json
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mimo.pipeline.io.datasets import load_gfp

from mimo.pipeline.io.gfp import GFP_GENOTYPES, GFP_VALID_LIST, read_genotypes
from mimo.pipeline.errors import DataError
from mimo.pipeline.io.fetch import fetch_gfp


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make_tape_archive(path, records):
    payload = json.dumps(records).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("fluorescence/fluorescence_valid.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))


def write_served_gfp(root, gfp_dir) -> str:
    """The genotype TSV and a TAPE archive made from ``gfp_dir``, as the public servers have them; returns the
    TSV's sha256."""
    tsv = (gfp_dir / GFP_GENOTYPES).read_bytes()
    (root / "genotypes.tsv").write_bytes(tsv)
    frame = read_genotypes(gfp_dir / GFP_GENOTYPES).set_index("mutations")
    valid = (gfp_dir / GFP_VALID_LIST).read_text().split()
    records = [{"primary": frame.loc[g, "sequence"], "log_fluorescence": [float(frame.loc[g, "label"])],
                "num_mutations": int(frame.loc[g, "n_mutations"])} for g in valid]
    make_tape_archive(root / "fluorescence.tar.gz", records)
    return hashlib.sha256(tsv).hexdigest()


@contextlib.contextmanager
def serve_gfp(root, gfp_dir):
    """A local HTTP server with the GFP files: yields (base url, genotype sha256)."""
    root.mkdir(parents=True, exist_ok=True)
    sha = write_served_gfp(root, gfp_dir)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", sha
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_downloads_verifies_and_derives_valid_list(tmp_path, server, small_gfp_dir):
    root, url = server
    write_served_gfp(root, small_gfp_dir)
    tsv = (small_gfp_dir / GFP_GENOTYPES).read_bytes()
    valid = (small_gfp_dir / GFP_VALID_LIST).read_text().split()
    out = tmp_path / "data"
    fetch_gfp(out, f"{url}/genotypes.tsv", hashlib.sha256(tsv).hexdigest(), f"{url}/fluorescence.tar.gz",
              log=lambda _: None)
    assert (out / GFP_GENOTYPES).read_bytes() == tsv
    assert (out / GFP_VALID_LIST).read_text().split() == valid
    assert (load_gfp(out).splits["tape"] == load_gfp(small_gfp_dir).splits["tape"]).all()


def test_fetch_refuses_wrong_checksum_and_leaves_nothing(tmp_path, server):
    root, url = server
    (root / "genotypes.tsv").write_text("aaMutations\tmedianBrightness\n#\t3.7\n")
    out = tmp_path / "data"
    with pytest.raises(DataError, match="expected 00000"):
        fetch_gfp(out, f"{url}/genotypes.tsv", "0" * 64, f"{url}/x.tar.gz", log=lambda _: None)
    assert list(out.iterdir()) == []


def test_fetch_reports_unreachable_address(tmp_path, server):
    _, url = server
    with pytest.raises(DataError, match="download of .*missing.tsv failed"):
        fetch_gfp(tmp_path / "d", f"{url}/missing.tsv", None, f"{url}/x.tar.gz", log=lambda _: None)


def test_a_derived_validation_list_other_than_tapes_is_refused(tmp_path, server, small_gfp_dir, gfp_dir):
    """TAPE publishes no checksum of its archive: the list derived from it is checked instead."""
    from mimo.pipeline.io.fetch import TAPE_URL, VALID_LIST_SHA256

    assert TAPE_URL.startswith("https://")
    assert hashlib.sha256((gfp_dir / GFP_VALID_LIST).read_bytes()).hexdigest() == VALID_LIST_SHA256
    root, url = server
    write_served_gfp(root, small_gfp_dir)
    tsv = (small_gfp_dir / GFP_GENOTYPES).read_bytes()
    out = tmp_path / "data"
    with pytest.raises(DataError, match="validation list derived from the archive has sha256 .* not TAPE's split"):
        fetch_gfp(out, f"{url}/genotypes.tsv", hashlib.sha256(tsv).hexdigest(), f"{url}/fluorescence.tar.gz",
                  log=lambda _: None, valid_sha256=VALID_LIST_SHA256)
    assert not (out / GFP_VALID_LIST).exists()
