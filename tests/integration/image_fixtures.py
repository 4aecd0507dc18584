"""Test images written by hand: layer tars (tarfile), an OCI image layout, an
oci-archive and docker-archives in the shapes seen in the wild, all from
/bin/busybox (Debian's busybox-static) and a few files. Nothing is downloaded.

`Image` collects layers and a config; `write_oci`, `write_oci_archive`,
`write_docker_archive_legacy` (Docker <= 24), `write_docker_archive_oci`
(Docker >= 25) and `skopeo_docker_archive` (skopeo's own shape) write it out.
"""

import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = "/bin/busybox"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "tar": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def native_arch():
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Tar:
    """A layer's tar, entry by entry."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, type_, mode, uid=0, gid=0, mtime=1700000000):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = type_, mode, uid, gid, mtime
        return ti

    def dir(self, name, mode=0o755, **kw):
        self.tf.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))
        return self

    def file(self, name, data=b"", mode=0o644, **kw):
        data = data.encode() if isinstance(data, str) else data
        ti = self._info(name, tarfile.REGTYPE, mode, **kw)
        ti.size = len(data)
        self.tf.addfile(ti, io.BytesIO(data))
        return self

    def symlink(self, name, target, **kw):
        ti = self._info(name, tarfile.SYMTYPE, 0o777, **kw)
        ti.linkname = target
        self.tf.addfile(ti)
        return self

    def hardlink(self, name, target, **kw):
        ti = self._info(name, tarfile.LNKTYPE, 0o644, **kw)
        ti.linkname = target
        self.tf.addfile(ti)
        return self

    def bytes(self):
        self.tf.close()
        return self.buf.getvalue()


def busybox_tar(extra_files=None):
    """A minimal root filesystem: busybox, sh, /etc/passwd and group, /tmp; plus
    EXTRA_FILES {name: data or (data, mode)}."""
    t = Tar()
    for d in ("bin", "etc", "tmp", "usr", "usr/bin", "var"):
        t.dir(d, 0o1777 if d == "tmp" else 0o755)
    with open(BUSYBOX, "rb") as f:
        t.file("bin/busybox", f.read(), 0o755)
    for applet in ("sh", "ls", "cat", "id", "echo", "env", "pwd", "stat", "grep", "touch"):
        t.symlink(f"bin/{applet}", "busybox")
    t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/:/bin/sh\n")
    t.file("etc/group", "root:x:0:\ndaemon:x:1:\n")
    t.file("etc/os-release", "NAME=moat-test\n")
    t.file("etc/owned-by-daemon", "daemon\n", uid=1, gid=1)
    for name, data in (extra_files or {}).items():
        # data, or (data, mode) for an executable
        t.file(name, *(data if isinstance(data, tuple) else (data,)))
    return t.bytes()


def compress(tar, how):
    if how == "tar":
        return tar
    if how == "gzip":
        return gzip.compress(tar, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=tar, stdout=subprocess.PIPE,
                              check=True).stdout
    raise ValueError(how)


class Image:
    """Layers (uncompressed tars with their compression) and a config."""

    def __init__(self, layers=None, compression="gzip", config=None):
        self.layers = [(t, compression) for t in (layers or [busybox_tar()])]
        self.config_extra = config or {}

    def config(self):
        cfg = {
            "created": "2026-01-01T00:00:00Z",
            "architecture": native_arch(),
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin:/bin", "IMAGE_VAR=from-image"],
                "Cmd": ["/bin/sh", "-c", "echo hello from the image"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers",
                       "diff_ids": [sha256(t) for t, _ in self.layers]},
        }
        for k, v in self.config_extra.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        return cfg

    def blobs(self):
        """(config bytes, [(blob bytes, media type)])"""
        cfg = json.dumps(self.config()).encode()
        layers = [(compress(t, c), LAYER_TYPES[c]) for t, c in self.layers]
        return cfg, layers

    def manifest(self, cfg, layers):
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
            "layers": [{"mediaType": t, "digest": sha256(b), "size": len(b)} for b, t in layers],
        }


def put_blob(layout, data):
    d = Path(layout) / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    digest = sha256(data)
    (d / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_oci(layout, image=None, tag="latest", manifest_edit=None, index_edit=None,
              extra_images=()):
    """An OCI image layout at LAYOUT holding IMAGE (and EXTRA_IMAGES as (image, tag)).
    manifest_edit(dict) / index_edit(dict) may change the documents before they
    are written. Returns the manifest's descriptor."""
    layout = Path(layout)
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries = []
    first = None
    for img, t in [(image or Image(), tag), *extra_images]:
        cfg, layers = img.blobs()
        put_blob(layout, cfg)
        for b, _ in layers:
            put_blob(layout, b)
        m = img.manifest(cfg, layers)
        if manifest_edit and first is None:
            manifest_edit(m)
        mb = json.dumps(m).encode()
        desc = {"mediaType": OCI_MANIFEST, **put_blob(layout, mb)}
        if t:
            desc["annotations"] = {"org.opencontainers.image.ref.name": t}
        entries.append(desc)
        first = first or desc
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    if index_edit:
        index_edit(index)
    (layout / "index.json").write_text(json.dumps(index))
    return first


def tar_dir(src, dest):
    """A tar of directory SRC's contents (names relative to it) at DEST."""
    with tarfile.open(dest, "w") as tf:
        for p in sorted(Path(src).rglob("*")):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False)
    return dest


def write_oci_archive(path, workdir, image=None, tag="latest"):
    layout = Path(workdir) / "layout-for-archive"
    write_oci(layout, image, tag)
    return tar_dir(layout, path)


def _add_bytes(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1700000000
    tf.addfile(ti, io.BytesIO(data))


def write_docker_archive_legacy(path, image=None, repo_tag="moat-test:latest"):
    """Docker <= 24's `docker save`: <id>/layer.tar, <config>.json, manifest.json,
    repositories."""
    image = image or Image(compression="tar")
    cfg = json.dumps(image.config()).encode()
    names = []
    with tarfile.open(path, "w") as tf:
        parent = ""
        for tar, _ in image.layers:
            lid = hashlib.sha256((parent + sha256(tar)).encode()).hexdigest()
            _add_bytes(tf, f"{lid}/VERSION", b"1.0")
            _add_bytes(tf, f"{lid}/json", json.dumps({"id": lid, "parent": parent}).encode())
            _add_bytes(tf, f"{lid}/layer.tar", tar)
            names.append(f"{lid}/layer.tar")
            parent = lid
        cname = hashlib.sha256(cfg).hexdigest() + ".json"
        _add_bytes(tf, cname, cfg)
        manifest = [{"Config": cname, "RepoTags": [repo_tag] if repo_tag else [],
                     "Layers": names}]
        _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
        repo, _, tag = repo_tag.rpartition(":")
        _add_bytes(tf, "repositories", json.dumps({repo: {tag: parent}}).encode())
    return path


def write_docker_archive_oci(path, workdir, image=None, repo_tag="moat-test:latest"):
    """Docker >= 25's `docker save`: an OCI layout plus manifest.json naming blobs."""
    image = image or Image(compression="tar")
    layout = Path(workdir) / "layout-for-docker25"
    write_oci(layout, image, tag=None)
    cfg, layers = image.blobs()
    manifest = [{"Config": f"blobs/sha256/{sha256(cfg)[7:]}", "RepoTags": [repo_tag],
                 "Layers": [f"blobs/sha256/{sha256(b)[7:]}" for b, _ in layers]}]
    (layout / "manifest.json").write_text(json.dumps(manifest))
    return tar_dir(layout, path)


def skopeo_docker_archive(path, workdir, image=None, repo_tag="moat-test:latest"):
    """skopeo's docker-archive: written by skopeo itself from an OCI layout."""
    layout = Path(workdir) / "layout-for-skopeo"
    write_oci(layout, image or Image(compression="tar"))
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", f"oci:{layout}:latest",
                    f"docker-archive:{path}:{repo_tag}"], check=True, capture_output=True)
    return path
