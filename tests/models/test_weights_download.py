"""`model.pretrained: imagenet`: torchvision's file is downloaded once into torch's cache, checked,
and loaded into the backbone; a broken download is a WeightsError and leaves nothing in the cache.

A local HTTP server on 127.0.0.1 stands in for download.pytorch.org, serving a resnet18 state_dict
with torchvision's key names that the test writes; it counts the requests it answers."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from sceneseg.errors import WeightsError
from sceneseg.models import MODELS, resnet18, weights


class _Server:
    """Serves `routes` {path: (status, body, declared length)}; `requests` lists the paths asked for.
    A declared length above the body's is a connection cut short mid-file."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server calls it by this name
                server.requests.append(self.path)
                status, body, length = server.routes.get(self.path, (404, b"not found", 9))
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[dict[str, torch.Tensor], bytes, str]:
    """A torchvision-style resnet18 file (with its ImageNet `fc`): state, bytes, published name."""
    torch.manual_seed(1)
    state = resnet18().state_dict()
    state = {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v for k, v in state.items()}
    state.update({"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)})
    path = tmp_path_factory.mktemp("published") / "weights.pth"
    torch.save(state, path)
    content = path.read_bytes()
    # torch.hub checks the file against the hex digits in its name, as in torchvision's names.
    return state, content, f"resnet18-{hashlib.sha256(content).hexdigest()[:8]}.pth"


@pytest.fixture
def server(monkeypatch, tmp_path):
    """The stand-in server, with torch's cache (TORCH_HOME) in tmp_path and no proxy in the way."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    running = _Server()
    yield running
    running.close()


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_imagenet_weights_are_downloaded_once_and_loaded(published, server, monkeypatch, tmp_path):
    state, content, name = published
    server.routes[f"/models/{name}"] = (200, content, len(content))
    monkeypatch.setitem(weights.TORCHVISION_URLS, "resnet18", server.url(f"/models/{name}"))

    model = MODELS["simple"](11, "resnet18", pretrained="imagenet")
    backbone = model.backbone.state_dict()
    assert all(torch.equal(backbone[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert server.requests == [f"/models/{name}"]
    assert sorted(p.name for p in _cache(tmp_path).iterdir()) == [name]
    assert (_cache(tmp_path) / name).read_bytes() == content

    # The second model is built from the cache: no request reaches the server.
    again = MODELS["pspnet"](11, "resnet18", deep_stem=False, pretrained="imagenet", output_stride=32)
    assert torch.equal(again.backbone.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert len(server.requests) == 1


@pytest.mark.parametrize("failure", ["server_error", "truncated", "corrupt"])
def test_a_broken_download_names_the_url_and_caches_nothing(failure, published, server, monkeypatch, tmp_path):
    _, content, name = published
    path = f"/models/{name}"
    server.routes[path] = {
        "server_error": (500, b"internal error", 14),
        "truncated": (200, content[: len(content) // 3], len(content)),
        "corrupt": (200, content[:-64] + bytes(64), len(content)),  # right size, wrong bytes
    }[failure]
    monkeypatch.setitem(weights.TORCHVISION_URLS, "resnet18", server.url(path))
    with pytest.raises(WeightsError) as info:
        weights.load_backbone_weights(resnet18(), "imagenet", "resnet18")
    message = str(info.value)
    assert server.url(path) in message and "pass its path instead of 'imagenet'" in message
    assert server.requests == [path]
    cache = _cache(tmp_path)
    assert not cache.exists() or not any(cache.iterdir())  # no partial or corrupt file left to load later

    # Once the server is healthy again, the same call downloads and succeeds.
    server.routes[path] = (200, content, len(content))
    trunk = resnet18()
    weights.load_backbone_weights(trunk, "imagenet", "resnet18")
    assert [p.name for p in cache.iterdir()] == [name] and len(server.requests) == 2


def test_a_damaged_cached_copy_is_named(published, server, monkeypatch, tmp_path):
    """torch.hub trusts a file already in its cache (say, one copied by hand on an offline machine
    and cut short): the error names that file, since downloading cannot replace it."""
    state, content, name = published
    path = f"/models/{name}"
    server.routes[path] = (200, content, len(content))
    monkeypatch.setitem(weights.TORCHVISION_URLS, "resnet18", server.url(path))
    cached = _cache(tmp_path) / name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content[:1000])
    with pytest.raises(WeightsError) as info:
        weights.load_backbone_weights(resnet18(), "imagenet", "resnet18")
    assert f"cannot read {cached}" in str(info.value) and "delete it to download it again" in str(info.value)
    assert server.requests == []

    cached.unlink()  # as the message says
    trunk = resnet18()
    weights.load_backbone_weights(trunk, "imagenet", "resnet18")
    assert torch.equal(trunk.conv1.weight, state["conv1.weight"]) and server.requests == [path]
