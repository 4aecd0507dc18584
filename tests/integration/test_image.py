"""moat image: local transports, the cache, and every check on blobs and
documents, with images written by the tests themselves (image_fixtures.py)."""

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

import image_fixtures as fx
from moat_it import run_moat

BUSYBOX_BYTES = Path(fx.BUSYBOX).read_bytes()


def image(ctx, *args, timeout=60, env=None):
    return run_moat(ctx, *args, sub="image", timeout=timeout, env=env)


def ok(cp):
    assert cp.returncode == 0, (cp.args, cp.stdout, cp.stderr)
    return cp


def fixture_dir(ctx, name):
    """A directory of test inputs the moat user can read."""
    d = ctx.base / name
    d.mkdir()
    return d


def chown_tree(ctx, path):
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), ctx.run_uid, ctx.run_gid)
    os.lchown(path, ctx.run_uid, ctx.run_gid)


def images_dir(ctx):
    return ctx.moat_home / "images"


def cached_roots(ctx):
    roots = images_dir(ctx) / "roots"
    return sorted(p.name for p in roots.iterdir()) if roots.exists() else []


def leftovers(ctx):
    tmp = images_dir(ctx) / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def make_ref(kind, d):
    """A reference to the default test image in transport KIND, written under d."""
    if kind in ("oci-tar", "oci-gzip", "oci-zstd"):
        fx.write_oci(d / "layout", fx.Image(compression=kind[4:]))
        return f"oci:{d}/layout:latest"
    if kind == "oci-archive":
        fx.write_oci_archive(d / "img.tar", d)
        return f"oci-archive:{d}/img.tar:latest"
    if kind == "docker-archive-24":
        fx.write_docker_archive_legacy(d / "img.tar")
        return f"docker-archive:{d}/img.tar"
    if kind == "docker-archive-25":
        fx.write_docker_archive_oci(d / "img.tar", d)
        return f"docker-archive:{d}/img.tar:moat-test:latest"
    if kind == "docker-archive-skopeo":
        fx.skopeo_docker_archive(d / "img.tar", d)
        return f"docker-archive:{d}/img.tar:moat-test:latest"
    raise ValueError(kind)


TRANSPORTS = ["oci-tar", "oci-gzip", "oci-zstd", "oci-archive", "docker-archive-24",
              "docker-archive-25", "docker-archive-skopeo"]


def check_rootfs(ctx, root, owner_of_daemon_file):
    root = Path(root)
    assert (root / "bin/busybox").read_bytes() == BUSYBOX_BYTES
    assert os.stat(root / "bin/busybox").st_mode & 0o777 == 0o755
    assert os.readlink(root / "bin/sh") == "busybox"
    assert (root / "etc/os-release").read_text() == "NAME=moat-test\n"
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert os.stat(root / "etc/owned-by-daemon").st_uid == owner_of_daemon_file


@pytest.mark.all_users
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_unpack_every_transport(ctx, kind):
    d = fixture_dir(ctx, "in")
    ref = make_ref(kind, d)
    out = ctx.base / "out"
    ok(image(ctx, "unpack", "-q", ref, out))
    # as root ownership follows the layer; rootless, everything is the caller's
    check_rootfs(ctx, out, 1 if ctx.run_uid == 0 else ctx.run_uid)
    assert os.stat(out / "bin/busybox").st_uid == ctx.run_uid
    # unpack never touches the cache's trees
    assert cached_roots(ctx) == []


def test_unpack_target_must_be_empty(ctx):
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-gzip", d)
    out = ctx.base / "out"
    out.mkdir()
    (out / "something").write_text("x")
    chown_tree(ctx, out)
    cp = image(ctx, "unpack", ref, out)
    assert cp.returncode != 0 and "not empty" in cp.stderr, cp
    assert sorted(os.listdir(out)) == ["something"]


@pytest.mark.all_users
def test_pull_cache_ls_inspect_rm_prune(ctx):
    d = fixture_dir(ctx, "in")
    oci = make_ref("oci-gzip", d)
    archive = make_ref("docker-archive-24", d)
    chain = ok(image(ctx, "pull", "-q", oci)).stdout.strip()
    assert chain.startswith("sha256:") and len(chain) == 71
    assert cached_roots(ctx) == [chain[7:]]
    rootfs = images_dir(ctx) / "roots" / chain[7:] / "rootfs"
    if ctx.variant == "user":
        sub_start = ctx.subuid[0]
        # unpacked in the mapped user namespace: uid 0 and 1 are the subordinate ids
        # a run maps them to
        assert os.stat(rootfs / "bin/busybox").st_uid == sub_start
        assert os.stat(rootfs / "etc/owned-by-daemon").st_uid == sub_start + 1
    elif ctx.variant == "root":
        assert os.stat(rootfs / "etc/owned-by-daemon").st_uid == 1
    else:
        assert os.stat(rootfs / "etc/owned-by-daemon").st_uid == ctx.run_uid
    assert (rootfs / "bin/busybox").read_bytes() == BUSYBOX_BYTES
    assert os.stat(images_dir(ctx)).st_mode & 0o777 == 0o700

    # the same layers from another transport: the same ChainID, no second tree
    assert ok(image(ctx, "import", "-q", archive)).stdout.strip() == chain
    assert cached_roots(ctx) == [chain[7:]]
    listing = json.loads(ok(image(ctx, "ls", "--json")).stdout)
    assert len(listing) == 1 and listing[0]["chain_id"] == chain
    assert sorted(listing[0]["refs"]) == sorted([f"oci:{d}/layout:latest",
                                                 f"docker-archive:{d}/img.tar"])
    table = ok(image(ctx, "ls")).stdout
    assert chain[7:19] in table and f"oci:{d}/layout:latest" in table

    info = json.loads(ok(image(ctx, "inspect", oci)).stdout)
    assert info["chain_id"] == chain
    assert info["os"] == "linux" and info["architecture"] == fx.native_arch()
    assert info["config"]["config"]["Env"] == ["PATH=/usr/bin:/bin", "IMAGE_VAR=from-image"]
    (layer,) = info["layers"]
    assert layer["media_type"] == fx.LAYER_TYPES["gzip"]
    assert layer["diff_id"] == chain  # one layer: ChainID = DiffID
    blob = d / "layout/blobs/sha256" / layer["digest"][7:]
    assert layer["size"] == blob.stat().st_size
    assert json.loads(ok(image(ctx, "inspect", chain[:14])).stdout)["chain_id"] == chain

    # rm by reference: the image stays while another reference names it
    ok(image(ctx, "rm", oci))
    assert cached_roots(ctx) == [chain[7:]]
    cp = image(ctx, "inspect", oci)
    assert cp.returncode != 0 and "not in the cache" in cp.stderr
    ok(image(ctx, "rm", archive))
    assert cached_roots(ctx) == []
    assert leftovers(ctx) == []
    cp = image(ctx, "rm", archive)
    assert cp.returncode != 0 and "not in the cache" in cp.stderr

    # prune: blobs nobody names any more go
    assert any((images_dir(ctx) / "blobs/sha256").iterdir())
    assert "removed" in ok(image(ctx, "prune")).stdout
    assert list((images_dir(ctx) / "blobs/sha256").iterdir()) == []


def test_rm_by_digest_and_prune_unreferenced(ctx):
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-zstd", d)
    chain = ok(image(ctx, "pull", "-q", ref)).stdout.strip()
    ok(image(ctx, "rm", chain[:12]))
    assert cached_roots(ctx) == []
    cp = image(ctx, "rm", "sha256:")
    assert cp.returncode != 0


def test_tag_moves_to_the_new_image(ctx):
    d = fixture_dir(ctx, "in")
    fx.write_oci(d / "layout", fx.Image())
    first = ok(image(ctx, "pull", "-q", f"oci:{d}/layout:latest")).stdout.strip()
    fx.write_oci(d / "layout", fx.Image(layers=[fx.busybox_tar({"etc/v2": "2"})]))
    second = ok(image(ctx, "pull", "-q", f"oci:{d}/layout:latest")).stdout.strip()
    assert first != second
    listing = {e["chain_id"]: e["refs"] for e in json.loads(ok(image(ctx, "ls", "--json")).stdout)}
    assert listing[second] == [f"oci:{d}/layout:latest"]
    assert listing[first] == []
    ok(image(ctx, "prune"))
    assert cached_roots(ctx) == [second[7:]]


def test_concurrent_pulls_unpack_once(ctx):
    d = fixture_dir(ctx, "in")
    fx.write_oci(d / "layout", fx.Image(layers=[fx.busybox_tar(),
                                                fx.Tar().file("big", os.urandom(8 << 20)).bytes()]))
    ref = f"oci:{d}/layout:latest"
    results = []

    def pull():
        results.append(run_moat(ctx, "-v", "image", "pull", "-q", ref, sub=None, timeout=120))

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cp in results:
        ok(cp)
    assert len({cp.stdout for cp in results}) == 1
    unpacks = sum(cp.stderr.count("unpacking") for cp in results)
    assert unpacks == 1, [cp.stderr for cp in results]
    assert len(cached_roots(ctx)) == 1 and leftovers(ctx) == []


def test_progress_only_on_a_terminal(ctx):
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-gzip", d)
    cp = ok(image(ctx, "pull", ref))
    assert "MiB/s" not in cp.stderr  # stderr is a pipe here
    ok(image(ctx, "rm", ref))
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(ctx.argv("image", "pull", ref, sub=None), env=ctx.env(),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = p.communicate(timeout=60)
    data = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    os.close(master)
    assert p.returncode == 0, data
    assert b"layer 1/1" in data and b"MiB/s" in data and b"ETA" in data, data


# ---------------------------------------------------------------- corruption


def corrupt_layer_byte(layout, where=0.5):
    m = manifest_of(layout)
    blob = layout / "blobs/sha256" / m["layers"][0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    blob.write_bytes(bytes(data))
    return m["layers"][0]["digest"]


def manifest_of(layout):
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return json.loads((layout / "blobs/sha256" / digest[7:]).read_text())


def rewrite_manifest(layout, edit):
    """Apply edit(manifest) and re-point index.json at the new manifest blob."""
    index = json.loads((layout / "index.json").read_text())
    m = manifest_of(layout)
    edit(m)
    mb = json.dumps(m).encode()
    desc = fx.put_blob(layout, mb)
    index["manifests"][0].update(desc)
    (layout / "index.json").write_text(json.dumps(index))


def rewrite_config(layout, edit):
    def e(m):
        cfg = json.loads((layout / "blobs/sha256" / m["config"]["digest"][7:]).read_text())
        edit(cfg)
        m["config"].update(fx.put_blob(layout, json.dumps(cfg).encode()))
    rewrite_manifest(layout, e)


def truncate_layer(layout):
    m = manifest_of(layout)
    blob = layout / "blobs/sha256" / m["layers"][0]["digest"][7:]
    blob.write_bytes(blob.read_bytes()[:-100])
    return m["layers"][0]["digest"]


CORRUPTIONS = {
    # a broken gzip stream, and a byte changed where the tar reader cannot notice
    "layer-digest": (corrupt_layer_byte, ["layer sha256:", "hashes to", "not the descriptor's"]),
    "layer-digest-late": (lambda l: corrupt_layer_byte(l, 0.999),
                          ["layer sha256:", "hashes to", "not the descriptor's"]),
    "layer-size": (truncate_layer, ["layer sha256:", "bytes, its descriptor"]),
    "diff-id": (lambda l: rewrite_config(
        l, lambda c: c["rootfs"].update(diff_ids=["sha256:" + "1" * 64])),
        ["diff_id is sha256:1111"]),
    "diff-id-count": (lambda l: rewrite_config(
        l, lambda c: c["rootfs"]["diff_ids"].append("sha256:" + "2" * 64)),
        ["2 diff_ids for 1 layers"]),
    "rootfs-type": (lambda l: rewrite_config(l, lambda c: c["rootfs"].update(type="union")),
                    ["rootfs.type must be"]),
    "manifest-and-index": (lambda l: rewrite_manifest(l, lambda m: m.update(manifests=[])),
                           ["refused"]),
    "layer-media-type": (lambda l: rewrite_manifest(
        l, lambda m: m["layers"][0].update(mediaType="application/x-tar-but-evil")),
        ["unknown media type application/x-tar-but-evil"]),
    "digest-traversal": (lambda l: rewrite_manifest(
        l, lambda m: m["layers"][0].update(digest="sha256:../../../../../etc/passwd")),
        ["not a digest"]),
    "missing-blob": (lambda l: rewrite_manifest(
        l, lambda m: m["layers"][0].update(digest="sha256:" + "3" * 64)),
        ["open blobs/sha256/3333"]),
    "config-size": (lambda l: rewrite_manifest(
        l, lambda m: m["config"].update(size=m["config"]["size"] + 1)),
        ["config sha256:", "descriptor says"]),
    "config-huge": (lambda l: rewrite_manifest(
        l, lambda m: m["config"].update(size=1 << 40)),
        ["config sha256:", "at most"]),
    "index-type-mismatch": (lambda l: (l / "index.json").write_text(
        (l / "index.json").read_text().replace(fx.OCI_MANIFEST, fx.OCI_INDEX)),
        ["its descriptor says"]),
    "layout-version": (lambda l: (l / "oci-layout").write_text('{"imageLayoutVersion":"9.9"}'),
                       ["imageLayoutVersion"]),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corruption_is_refused_and_cache_untouched(ctx, case):
    d = fixture_dir(ctx, "in")
    layout = d / "layout"
    fx.write_oci(layout, fx.Image())
    mutate, needles = CORRUPTIONS[case]
    mutate(layout)
    for args in (["pull", "-q", f"oci:{layout}"], ["unpack", "-q", f"oci:{layout}",
                                                     ctx.base / "out"]):
        cp = image(ctx, *args)
        assert cp.returncode == 125, (case, cp)
        lines = [l for l in cp.stderr.splitlines() if l]
        assert len(lines) == 1 and lines[0].startswith("moat: "), cp.stderr
        for n in needles:
            assert n in lines[0], (case, lines[0])
        assert cached_roots(ctx) == [] and leftovers(ctx) == []
        assert not (ctx.base / "out").exists()


def test_docker25_blob_named_by_wrong_digest(ctx):
    d = fixture_dir(ctx, "in")
    fx.write_docker_archive_oci(d / "img.tar", d)
    # rewrite the archive with one blob's bytes changed but its name kept
    import tarfile
    import io
    src = tarfile.open(d / "img.tar")
    with tarfile.open(d / "bad.tar", "w") as out:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.isfile() and m.name.startswith("blobs/") and m.size > 100000:
                data = data[:-1] + bytes([data[-1] ^ 1])
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    cp = image(ctx, "pull", f"docker-archive:{d}/bad.tar")
    assert cp.returncode == 125 and "blobs/sha256/" in cp.stderr and "digest mismatch" in cp.stderr
    assert cached_roots(ctx) == []


def test_archive_names(ctx):
    d = fixture_dir(ctx, "in")
    fx.write_docker_archive_legacy(d / "img.tar", repo_tag="example.com/team/app:v1")
    ok(image(ctx, "pull", "-q", f"docker-archive:{d}/img.tar:example.com/team/app:v1"))
    cp = image(ctx, "pull", f"docker-archive:{d}/img.tar:example.com/team/app:v2")
    assert cp.returncode == 125 and "no image example.com/team/app:v2" in cp.stderr
    cp = image(ctx, "pull", f"oci-archive:{d}/img.tar")
    assert cp.returncode == 125 and "not an OCI archive" in cp.stderr
    cp = image(ctx, "pull", f"oci:{d}/missing")
    assert cp.returncode == 125 and f"{d}/missing" in cp.stderr
    cp = image(ctx, "import", "docker://127.0.0.1:1/x")
    assert cp.returncode == 125 and "registry image" in cp.stderr


def test_layer_bomb_bounded(ctx):
    d = fixture_dir(ctx, "in")
    bomb = fx.Tar().file("zeros", b"\0" * (32 << 20)).bytes()
    fx.write_oci(d / "layout", fx.Image(layers=[fx.busybox_tar(), bomb]))
    cp = image(ctx, "pull", "--max-layer-size", "16m", f"oci:{d}/layout")
    assert cp.returncode == 125, cp
    m = manifest_of(d / "layout")
    assert m["layers"][1]["digest"] in cp.stderr, cp.stderr
    assert cached_roots(ctx) == [] and leftovers(ctx) == []
    ok(image(ctx, "pull", "-q", "--max-layer-size", "64m", f"oci:{d}/layout"))


def test_help(ctx):
    cp = ok(image(ctx, "--help"))
    for word in ("pull", "import", "ls", "inspect", "rm", "prune", "unpack", "oci-archive:"):
        assert word in cp.stdout
    for sub, usage in (("pull", "REF"), ("unpack", "REF DIR"), ("ls", "[--json]"),
                       ("rm", "NAME...")):
        cp = ok(image(ctx, sub, "--help"))
        assert cp.stdout.splitlines()[0].startswith(f"Usage: moat image {sub}"), cp.stdout
        assert cp.stdout.splitlines()[0].endswith(usage), cp.stdout
    cp = image(ctx, "frob")
    assert cp.returncode == 125 and "unknown command" in cp.stderr
    cp = image(ctx, "unpack", "oci:x")
    assert cp.returncode == 125 and "usage" in cp.stderr


def test_platform_selection_in_nested_index(ctx):
    """A tag naming a multi-platform index (Docker manifest list types, an attestation-like
    entry): this machine's image is chosen; an index without it is refused by name."""
    d = fixture_dir(ctx, "in")
    layout = d / "layout"
    native = fx.Image(layers=[fx.busybox_tar({"etc/which": "native\n"})])
    other = fx.Image(layers=[fx.busybox_tar({"etc/which": "other\n"})],
                     config={"architecture": "s390x-elsewhere"})
    fx.write_oci(layout, native, tag=None)
    entries = []
    for img, arch in ((other, "s390x-elsewhere"), (native, fx.native_arch())):
        cfg, layers = img.blobs()
        fx.put_blob(layout, cfg)
        for b, _ in layers:
            fx.put_blob(layout, b)
        m = img.manifest(cfg, layers)
        m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
        entries.append({"mediaType": m["mediaType"], **fx.put_blob(layout, json.dumps(m).encode()),
                        "platform": {"os": "linux", "architecture": arch}})
    entries.insert(0, {**entries[1], "platform": {"os": "unknown", "architecture": "unknown"}})
    lst = {"schemaVersion": 2,
           "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
           "manifests": entries}
    desc = {"mediaType": lst["mediaType"], **fx.put_blob(layout, json.dumps(lst).encode()),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}}
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": fx.OCI_INDEX, "manifests": [desc]}))
    out = ctx.base / "out"
    ok(image(ctx, "unpack", "-q", f"oci:{layout}:multi", out))
    assert (out / "etc/which").read_text() == "native\n"

    lst["manifests"] = [entries[1]]
    desc.update(fx.put_blob(layout, json.dumps(lst).encode()))
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": fx.OCI_INDEX, "manifests": [desc]}))
    cp = image(ctx, "pull", f"oci:{layout}:multi")
    assert cp.returncode == 125 and f"has no image for linux/{fx.native_arch()}" in cp.stderr, cp
    cp = image(ctx, "pull", f"oci:{layout}:nope")
    assert cp.returncode == 125 and 'no image tagged "nope" (tags: multi)' in cp.stderr, cp


def test_layer_error_names_blob_and_entry(ctx):
    d = fixture_dir(ctx, "in")
    fx.write_oci(d / "layout", fx.Image(layers=[fx.busybox_tar(),
                                                fx.Tar().file("../escape", "x").bytes()]))
    cp = image(ctx, "pull", f"oci:{d}/layout")
    digest = manifest_of(d / "layout")["layers"][1]["digest"]
    assert cp.returncode == 125, cp
    assert cp.stderr.startswith(f"moat: layer {digest}: entry ../escape: "), cp.stderr
    assert cached_roots(ctx) == [] and leftovers(ctx) == []
    assert not (ctx.base / "escape").exists() and not (d / "escape").exists()


def test_archive_memo(ctx):
    """An archive imported once is not read again while unchanged; any change to it is."""
    d = fixture_dir(ctx, "in")
    ref = make_ref("docker-archive-24", d)
    archive = d / "img.tar"
    ok(image(ctx, "pull", "-q", ref))
    cp = ok(run_moat(ctx, "--log-level", "debug", "image", "pull", "-q", ref, sub=None))
    assert "not read again" in cp.stderr, cp.stderr
    # rewritten with a corrupted layer (same size, same mtime): read again; the image
    # its config names is still the verified one in the cache
    st = archive.stat()
    data = bytearray(archive.read_bytes())
    i = data.index(b"NAME=moat-test")
    data[i:i + 4] = b"EVIL"
    archive.write_bytes(bytes(data))
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    cp = ok(run_moat(ctx, "--log-level", "debug", "image", "pull", "-q", ref, sub=None))
    assert "not read again" not in cp.stderr, cp.stderr
    # without that image, the corrupted layer must be unpacked, and is refused
    ok(image(ctx, "rm", ref))
    cp = run_moat(ctx, "--log-level", "debug", "image", "pull", "-q", ref, sub=None)
    assert cp.returncode == 125 and "diff_id is sha256:" in cp.stderr, cp
    assert cached_roots(ctx) == []
    # prune forgets every memo with the blobs; a pull reads the archive again
    fx.write_docker_archive_legacy(archive)
    ok(image(ctx, "prune"))
    assert list((images_dir(ctx) / "archives").iterdir()) == []
    cp = ok(run_moat(ctx, "--log-level", "debug", "image", "pull", "-q", ref, sub=None))
    assert "not read again" not in cp.stderr


def test_concurrent_prunes(ctx):
    d = fixture_dir(ctx, "in")
    ok(image(ctx, "pull", "-q", make_ref("oci-gzip", d)))
    results = []
    threads = [threading.Thread(target=lambda: results.append(image(ctx, "prune", timeout=30)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [cp.returncode for cp in results] == [0, 0, 0], results
    assert len(cached_roots(ctx)) == 1
