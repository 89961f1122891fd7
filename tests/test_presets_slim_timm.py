"""TF-slim zoo and timm presets: safe `.tar.gz` extraction, a TF checkpoint served in an archive and a
timm `model.safetensors` served by a loopback Hugging Face hub, each loaded by `build_preset` and compared
with the model that wrote it. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import os
import tarfile

import numpy as np
import pytest

import kerasnets
from kerasnets import presets
from kerasnets.archives import UnsafeArchiveError, extract_checkpoint
from tests.loopback import LoopbackServer, QuietHandler
from tests.references import assert_parity, build_uninitialised, heal_keras, infer
import weights_io

SLIM_ROWS = [p for p in presets.list_presets() if p.archive]
HUB_ROWS = [p for p in presets.list_presets() if p.hub]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("KERASNETS_WEIGHTS_DIR", "KERASNETS_WEIGHTS_MIRROR", "KERASNETS_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    try:
        from huggingface_hub import constants
    except ImportError:
        pass
    else:  # a CI that sets HF_HUB_OFFLINE=1 must still reach the loopback hub
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False, raising=False)
    return tmp_path / "home"


class _Server(LoopbackServer):
    """Serves `files` (path -> bytes) on 127.0.0.1, with GET and HEAD; a Hugging Face hub's
    ``/{repo}/resolve/{revision}/{file}`` answers with the headers `hf_hub_download` reads."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self):
        self.files, self.requests = {}, []
        server = self

        class Handler(QuietHandler):
            def _answer(self, with_body):
                server.requests.append((self.command, self.path.split("?")[0]))
                body = server.files.get(self.path.split("?")[0].lstrip("/"))
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("X-Repo-Commit", server.COMMIT)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

        super().__init__(Handler)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.stop()


def _fake_preset(monkeypatch, base, **changes):
    preset = dataclasses.replace(presets.get_preset(base), **changes)
    monkeypatch.setitem(presets._table(), preset.name, preset)
    return preset


# ---- safe extraction ----

def _tar(path, entries):
    """A .tar.gz of `entries`: (name, bytes) for files, or (TarInfo, None) for anything else."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries:
            if isinstance(name, tarfile.TarInfo):
                tar.addfile(name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _info(name, kind, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def test_extracts_only_the_checkpoint_members(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [("./model.ckpt", b"v1 bytes"), ("train.graph", b"g"),
                                           ("README", b"r"), ("other.ckpt", b"o")])
    out = tmp_path / "out"
    out.mkdir()
    path = extract_checkpoint(archive, out, "model.ckpt")
    assert path == str(out / "model.ckpt") and open(path, "rb").read() == b"v1 bytes"
    assert sorted(os.listdir(out)) == ["model.ckpt"]

    v2 = _tar(tmp_path / "b.tar.gz", [("m/x.ckpt.index", b"i"), ("m/x.ckpt.data-00000-of-00001", b"d"),
                                      ("m/x.ckpt.meta", b"graph")])
    out2 = tmp_path / "out2"
    out2.mkdir()
    assert extract_checkpoint(v2, out2, "x.ckpt") == str(out2 / "x.ckpt")  # the V2 prefix
    assert sorted(os.listdir(out2)) == ["x.ckpt.data-00000-of-00001", "x.ckpt.index"]


HOSTILE = {
    "absolute": ([("/etc/model.ckpt", b"x")], "'/etc/model.ckpt'.*absolute path"),
    "dotdot": ([("a/../../model.ckpt", b"x")], r"'a/../../model.ckpt'.*'\.\.' in the path"),
    "symlink": ([(_info("model.ckpt", tarfile.SYMTYPE, linkname="/etc/passwd"), None)],
                "'model.ckpt'.*symbolic link"),
    "hardlink": ([("real", b"x"), (_info("model.ckpt", tarfile.LNKTYPE, linkname="real"), None)],
                 "'model.ckpt'.*hard link"),
    "device": ([(_info("model.ckpt", tarfile.CHRTYPE, devmajor=1, devminor=3), None)],
               "'model.ckpt'.*character device"),
    "fifo": ([(_info("pipe", tarfile.FIFOTYPE), None), ("model.ckpt", b"x")], "'pipe'.*FIFO"),
    "member too big": ([("model.ckpt", b"x" * 2000)], "'model.ckpt'.*2000 bytes, over the limit of 1000"),
    "total too big": ([("a", b"x" * 800), ("model.ckpt", b"x" * 800)], "exceed 1500 bytes.*'model.ckpt'"),
    "twice": ([("model.ckpt", b"x"), ("sub/model.ckpt", b"y")], "'sub/model.ckpt'.*appears twice"),
    "missing": ([("resnet.ckpt", b"x")], r"no checkpoint 'model.ckpt'.*\['resnet.ckpt'\]"),
}


def test_corrupt_archive_is_a_clear_error(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(open(_tar(tmp_path / "whole.tar.gz", [("model.ckpt", os.urandom(5000))]), "rb").read()[:700])
    (tmp_path / "page.tar.gz").write_bytes(b"<html>Not Found</html>")
    for path in (archive, tmp_path / "page.tar.gz"):
        with pytest.raises(UnsafeArchiveError, match="(?s)not a readable tar archive.*fetch it again"):
            extract_checkpoint(path, tmp_path, "model.ckpt")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_naming_the_member(tmp_path, case):
    entries, message = HOSTILE[case]
    archive = _tar(tmp_path / "evil.tar.gz", entries)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_checkpoint(archive, out, "model.ckpt", max_member_bytes=1000, max_total_bytes=1500)
    assert os.listdir(out) == []  # refused before anything was written
    assert not (tmp_path / "etc").exists()


# ---- a TF-slim archive preset end to end ----

_SLIM_PARAMS = {"scale": "gamma", "offset": "beta", "mean": "moving_mean", "variance": "moving_variance"}


def _write_slim_v1_checkpoint(model, layout, path, background_rng):
    """`model`'s weights under TF-slim's variable names, with a background class 0 added to the
    classifier as Google's 1001-class checkpoints have it, written by TensorFlow as a V1 checkpoint."""
    import tensorflow as tf

    exported = weights_io.export_weights(model, weights_io.get_layout(layout), "tf")
    head = weights_io.get_layout(layout).map_names(["predictions"])["predictions"]
    variables = {}
    for key, params in exported.tensors.items():
        for param, array in params.items():
            if key == head and param == "weights":  # slim's logits: a 1x1 conv, 1001 outputs
                array = array.reshape(1, 1, *array.shape)
                array = np.concatenate([background_rng.normal(size=array.shape[:3] + (1,)), array], axis=-1)
            elif key == head and param == "biases":
                array = np.concatenate([[5.0], array])  # a large background logit: dropping it must matter
            variables[f"{key}/{_SLIM_PARAMS.get(param, param)}"] = np.asarray(array, np.float32)
    with tf.Graph().as_default():
        made = [tf.compat.v1.Variable(value, name=name) for name, value in variables.items()]
        saver = tf.compat.v1.train.Saver(made, write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(path), write_meta_graph=False)
    assert sorted(variables) == sorted(tf.train.load_checkpoint(str(path)).get_variable_to_shape_map())
    return variables


def test_slim_archive_preset_downloads_extracts_and_converts(server, monkeypatch, tmp_path, home, capsys):
    """googlenet.tf_slim's path: .tar.gz over HTTP, TOFU hash, only inception_v1.ckpt extracted, V1
    checkpoint read, background class dropped, the converted cache used after; outputs = the writer's."""
    base = presets.get_preset("googlenet.tf_slim")
    shape = (96, 96, 3)
    x = np.random.default_rng(1).uniform(-1, 1, (4,) + shape).astype("float32")
    source = build_uninitialised(kerasnets.build, "googlenet", input_shape=shape, classifier_activation=None,
                                 **base.options)  # heal_keras gives the values
    heal_keras(source, x)
    checkpoint = tmp_path / "src" / base.archive["checkpoint"]
    checkpoint.parent.mkdir()
    _write_slim_v1_checkpoint(source, base.layout, checkpoint, np.random.default_rng(2))
    archive = tmp_path / base.file_name
    _tar(archive, [(base.archive["checkpoint"], checkpoint.read_bytes()), ("eval.graph", b"not extracted")])
    server.files[base.file_name] = archive.read_bytes()
    preset = _fake_preset(monkeypatch, "googlenet.tf_slim", name="t.slim", url=server.url + base.file_name)

    model = kerasnets.build_preset("t.slim", input_shape=shape, classifier_activation=None)
    assert_parity(infer(model, x), infer(source, x), what="slim preset vs its writer")
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in capsys.readouterr().err  # trusted on first use
    weights = sorted(os.listdir(home / "weights"))
    assert weights == [base.file_name, f"{base.file_name}.sha256"]  # the extraction folder is gone
    requests = len(server.requests)
    os.remove(home / "weights" / base.file_name)
    again = kerasnets.build_preset("t.slim", input_shape=shape, classifier_activation=None)
    assert len(server.requests) == requests  # the converted cache alone
    np.testing.assert_allclose(infer(again, x), infer(model, x), rtol=0, atol=0)
    assert preset.num_classes == 1000


def test_slim_archive_without_the_checkpoint_is_refused(server, monkeypatch, tmp_path):
    archive = _tar(tmp_path / "x.tar.gz", [("../inception_v1.ckpt", b"x")])
    server.files["x.tar.gz"] = archive.read_bytes()
    _fake_preset(monkeypatch, "googlenet.tf_slim", name="t.evil", url=server.url + "x.tar.gz", file_name="x.tar.gz")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./inception_v1\.ckpt'"):
        kerasnets.build_preset("t.evil", input_shape=(96, 96, 3))


# ---- a timm preset through a loopback Hugging Face hub ----

def test_timm_preset_through_the_hub(server, monkeypatch, tmp_path, home):
    pytest.importorskip("huggingface_hub")
    base = presets.get_preset("mobilenet_v3_small.timm_lamb_in1k")
    shape = (64, 64, 3)
    x = np.random.default_rng(3).normal(size=(4,) + shape).astype("float32")
    source = build_uninitialised(kerasnets.build, "mobilenet_v3_small", input_shape=shape, classifier_activation=None,
                                 **base.options)  # heal_keras gives the values
    heal_keras(source, x)
    written = tmp_path / "model.safetensors"
    weights_io.save_safetensors(source, written, layout=base.layout)
    repo = "timm/test-mobilenetv3"
    server.files[f"{repo}/resolve/main/model.safetensors"] = written.read_bytes()
    monkeypatch.setenv("HF_ENDPOINT", server.url.rstrip("/"))
    preset = _fake_preset(monkeypatch, base.name, name="t.timm", file_name="test-mobilenetv3.safetensors",
                          hub={"repo_id": repo, "filename": "model.safetensors", "revision": "main"})

    model = kerasnets.build_preset("t.timm", input_shape=shape, classifier_activation=None)
    assert_parity(infer(model, x), infer(source, x), what="timm preset vs its writer")
    assert ("GET", f"/{repo}/resolve/main/model.safetensors") in server.requests
    assert os.path.isdir(tmp_path / "hf" / "hub")  # HF_HOME was used
    assert (home / "weights" / "test-mobilenetv3.safetensors.sha256").read_text().strip() == \
        hashlib.sha256(written.read_bytes()).hexdigest()

    # offline, no converted cache: the hub's own cache serves the file, no request is made
    os.remove(presets.converted_path(preset))
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    before = len(server.requests)
    assert presets.locate_source(preset).startswith(str(tmp_path / "hf" / "hub"))
    assert len(server.requests) == before

    other = _fake_preset(monkeypatch, base.name, name="t.timm_missing", file_name="missing.safetensors",
                         hub={"repo_id": "timm/not-cached", "filename": "model.safetensors", "revision": "main"})
    with pytest.raises(presets.PresetUnavailableError, match="(?s)timm/not-cached.*HF_ENDPOINT.*missing.safetensors"):
        presets.locate_source(other)


def test_hub_file_that_changed_is_refused(server, monkeypatch, tmp_path, home):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_ENDPOINT", server.url.rstrip("/"))
    server.files["timm/r/resolve/main/model.safetensors"] = b"first"
    preset = _fake_preset(monkeypatch, "resnet50.timm_a1_in1k", name="t.tofu", file_name="r.safetensors",
                          hub={"repo_id": "timm/r", "filename": "model.safetensors", "revision": "main"})
    presets.locate_source(preset)
    server.files["timm/r/resolve/main/model.safetensors"] = b"second"
    monkeypatch.setattr(_Server, "COMMIT", "f" * 40)  # a new commit on main
    with pytest.raises(ValueError, match="recorded on first use"):
        presets.locate_source(preset)


# ---- the rows ----

def test_new_rows():
    assert {p.name for p in SLIM_ROWS} >= {"googlenet.tf_slim", "resnet50.tf_slim", "resnet50_v2.tf_slim",
                                           "inception_v3.tf_slim", "vgg16.tf_slim"}
    for p in SLIM_ROWS:
        assert p.url.startswith("http://download.tensorflow.org/models/") and p.url.endswith(p.file_name)
        assert p.archive["checkpoint"].endswith(".ckpt") and p.hash is None and p.format == "tf-checkpoint"
        assert p.layout.startswith("tf-slim-") and p.num_classes == 1000
    for p in HUB_ROWS:
        assert p.hub["repo_id"].startswith("timm/") and p.hub["filename"] == "model.safetensors"
        assert p.hub["revision"] == "main" and p.hash is None and p.format == "safetensors"
        assert p.url == f"https://huggingface.co/{p.hub['repo_id']}/resolve/main/model.safetensors"
    for p in SLIM_ROWS + HUB_ROWS:
        assert p.layout in weights_io.LAYOUTS and not p.default
        spec = kerasnets.model_spec(p.model)
        params = inspect.signature(spec.builder).parameters
        if not any(param.kind is param.VAR_KEYWORD for param in params.values()):
            assert set(p.options) <= set(params), p.name
        implied = weights_io.get_layout(p.layout).implied_options(spec.family, p.model)
        assert all(p.options[k] == v for k, v in implied.items() if k in p.options), p.name
    assert presets.get_preset("inception_resnet_v2.tf_slim").accuracy["top1"] == 80.4
    assert presets.get_preset("resnet50.timm_a1_in1k").accuracy["top1"] == 80.382
