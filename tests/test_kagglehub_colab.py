"""kagglehub on Colab: the dataset is mounted by the runtime, not downloaded; never a silent wait.

On Colab, kagglehub's ``DatasetColabCacheResolver`` posts to the runtime's server (its address
in ``TBE_RUNTIME_ADDR``) ``/kagglehub/datasets/is_supported`` and then
``/kagglehub/datasets/mount``, and waits for ``$COLAB_CACHE_MOUNT_FOLDER/<slug>`` to appear.
The stand-in is a local HTTP server (port 0) that answers those two requests; kagglehub itself
is the real one. Where they differ: the real server mounts the dataset over the network,
read-only; the stand-in either never mounts anything or links a folder of generated photos.
"""

import http.server
import json
import threading
import time
import warnings

import pytest

from densenet_tutorial.cli import main
from densenet_tutorial.data import download, prepare, synthesize
from densenet_tutorial.errors import RunError

SLUG = "dogs-vs-cats"  # the folder the runtime says it mounts the dataset in


@pytest.fixture
def colab_runtime(tmp_path, monkeypatch):
    """A stand-in Colab runtime server; returns ``(mount folder, requests received, mount)``:
    set ``mount[0]`` to a function to call when the mount is asked for (else none appears)."""
    received, mount = [], [None]

    class Runtime(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the name http.server calls)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            answer = {"slug": SLUG} if self.path.endswith("/mount") else {}
            if self.path.endswith("/mount") and mount[0]:
                threading.Timer(0.3, mount[0]).start()  # mounted a moment later
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mount_folder = tmp_path / "kaggle-input"
    mount_folder.mkdir()
    for name, value in {
        "TBE_RUNTIME_ADDR": f"127.0.0.1:{server.server_address[1]}",
        "COLAB_CACHE_MOUNT_FOLDER": str(mount_folder),  # never the real /kaggle/input
        "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub"),
        "HOME": str(tmp_path / "home"),
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("DISABLE_COLAB_CACHE", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
                 "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    yield mount_folder, received, mount
    server.shutdown()
    server.server_close()


def test_a_mount_that_never_appears_stops_with_what_to_try(colab_runtime, monkeypatch):
    mount_folder, received, _ = colab_runtime
    monkeypatch.setattr(download, "STALL_SECONDS", 1.5)
    monkeypatch.setattr(download, "POLL_SECONDS", 0.1)
    said = []
    start = time.monotonic()
    with pytest.raises(RunError) as error:
        download.download_dataset(say=said.append)
    assert time.monotonic() - start < 30  # kagglehub alone would wait forever
    assert [path for path, _ in received] == [
        "/kagglehub/datasets/is_supported", "/kagglehub/datasets/mount"
    ]  # fmt: skip
    assert received[1][1] == {"owner": "salader", "dataset": "dogs-vs-cats", "version": 1}
    message = str(error.value)
    assert "\n" not in message
    assert f"mount {download.DEFAULT_HANDLE} under {mount_folder}" in message
    assert "DISABLE_COLAB_CACHE" in message and download.FALLBACK_HANDLE in message
    assert "--source DIR" in message
    # Before waiting, it said where the photos would come from.
    assert said == [download.describe_source(download.DEFAULT_HANDLE)]
    assert f"mount {download.DEFAULT_HANDLE} read-only under {mount_folder}/" in said[0]


def test_the_command_line_says_the_stall_in_one_line(colab_runtime, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "STALL_SECONDS", 1)
    monkeypatch.setattr(download, "POLL_SECONDS", 0.1)
    assert main(["prepare", "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("The photos: kagglehub asks this Colab runtime to mount")
    errors = captured.err.strip().splitlines()
    assert errors[-1].startswith("error: Waited 1 s for Colab to mount")
    assert "Traceback" not in captured.err


def test_a_mount_that_appears_is_used_read_only_in_place(colab_runtime, tmp_path, monkeypatch):
    mount_folder, _, mount = colab_runtime
    photos = tmp_path / "photos"
    synthesize(photos, 8, size=(64, 48))
    mount[0] = lambda: (mount_folder / SLUG).symlink_to(photos, target_is_directory=True)
    monkeypatch.setattr(download, "STALL_SECONDS", 20)
    monkeypatch.setattr(download, "POLL_SECONDS", 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer than 25,000 images"
        split_dir = prepare(out=tmp_path / "out", workers=1, progress=False)
    meta = json.loads((split_dir / "meta.json").read_text())
    assert meta["handle"] == download.DEFAULT_HANDLE
    assert meta["source_root"] == str(photos.resolve())  # read where it was mounted
    assert not (tmp_path / "kagglehub").exists()  # nothing downloaded


def test_disable_colab_cache_means_a_download_into_kagglehubs_cache(colab_runtime, monkeypatch):
    monkeypatch.setenv("DISABLE_COLAB_CACHE", "1")
    assert download.colab_mount_folder(download.DEFAULT_HANDLE) is None
    line = download.describe_source(download.DEFAULT_HANDLE)
    assert line.startswith(f"The photos: {download.DEFAULT_HANDLE}, downloaded by kagglehub")
    assert str(download.cache_folder(download.DEFAULT_HANDLE)) in line


def test_a_download_that_makes_no_progress_stops(tmp_path, monkeypatch):
    """Off Colab: a fetch that hangs (a stand-in for kagglehub stuck on a dead connection)
    is stopped; one that keeps writing into kagglehub's cache is not."""
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.delenv("TBE_RUNTIME_ADDR", raising=False)
    monkeypatch.setattr(download, "STALL_SECONDS", 1)
    monkeypatch.setattr(download, "POLL_SECONDS", 0.1)
    release = threading.Event()
    monkeypatch.setattr(download, "fetch", lambda handle: release.wait(60))
    with pytest.raises(RunError, match="made no progress for 1 s .*Check the network"):
        download.fetch_watched(download.DEFAULT_HANDLE)
    release.set()

    def slow_download(handle):
        archive = download.cache_folder(handle) / "1.archive"
        archive.parent.mkdir(parents=True)
        for _ in range(30):  # 3 s in all, a new block every 0.1 s
            with archive.open("ab") as file:
                file.write(bytes(1000))
            time.sleep(0.1)
        return archive.parent

    monkeypatch.setattr(download, "fetch", slow_download)
    assert download.fetch_watched(download.DEFAULT_HANDLE).name == "1"
