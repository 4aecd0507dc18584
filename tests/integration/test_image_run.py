"""moat run --image: the image's root with the run's own layer, its config's
defaults, and a cache no run ever writes."""

import json
import os
from pathlib import Path

import pytest

import image_fixtures as fx
from moat_it import run_moat
from test_image import TRANSPORTS, cached_roots, fixture_dir, images_dir, make_ref


def runs(ctx):
    """The names of the runs whose own layer (MOAT_HOME/runs/ID/layer) is there."""
    d = ctx.moat_home / "runs"
    if not d.exists():
        return []
    return sorted(json.loads((p / "state.json").read_text())["name"]
                  for p in d.iterdir() if (p / "layer").exists())


def run_dir(ctx, name):
    for p in (ctx.moat_home / "runs").iterdir():
        if (p / "state.json").exists() and json.loads((p / "state.json").read_text())["name"] == name:
            return p
    raise AssertionError(f"no run {name} in MOAT_HOME/runs")


def run_image(ctx, ref, *cmd, env=None, flags=()):
    return run_moat(ctx, "--image", ref, *flags, *(["--", *cmd] if cmd else []), env=env,
                    timeout=60)


PROBE = ("id -u; pwd; grep -c '^moatuser:x:5000:5000:' /etc/passwd; "
         "grep -c '^daemon:' /etc/passwd; grep -c '^moatuser:x:5000:' /etc/group; "
         "echo $IMAGE_VAR $PATH; cat /etc/os-release; stat -c %u /etc/owned-by-daemon")


@pytest.mark.all_users
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_run_every_transport(ctx, kind):
    d = fixture_dir(ctx, "in")
    ref = make_ref(kind, d)
    cp = run_image(ctx, ref, "sh", "-c", PROBE)
    assert cp.returncode == 0, cp
    lines = cp.stdout.splitlines()
    assert lines[:5] == ["5000", "/", "1", "1", "1"], cp.stdout
    assert lines[5] == "from-image /usr/bin:/bin"
    assert lines[6] == "NAME=moat-test"
    # with subordinate ids the image's owners survive; otherwise nothing else is mapped
    assert lines[7] == ("1" if ctx.variant == "user" else
                        str(5000 if ctx.variant == "nosub" else 65534)), (ctx.variant, lines)
    assert runs(ctx) == []


@pytest.mark.all_users
def test_run_defaults_and_cache_untouched(ctx):
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-gzip", d)
    # the image's Cmd when none is given
    cp = run_image(ctx, ref)
    assert (cp.returncode, cp.stdout) == (0, "hello from the image\n"), cp
    # writes land in the run's own layer, never in the cache, and go with the run
    cp = run_image(ctx, ref, "sh", "-c",
                   "echo x > /etc/from-run && cat /etc/from-run && echo y >> /etc/passwd")
    assert (cp.returncode, cp.stdout) == (0, "x\n"), cp
    (chain,) = cached_roots(ctx)
    rootfs = images_dir(ctx) / "roots" / chain / "rootfs"
    assert not (rootfs / "etc/from-run").exists()
    assert "moatuser" not in (rootfs / "etc/passwd").read_text()
    assert runs(ctx) == []
    cp = run_image(ctx, ref, "sh", "-c", "test ! -e /etc/from-run && tail -n1 /etc/passwd")
    assert cp.returncode == 0 and cp.stdout.startswith("moatuser:"), cp
    # a cached image by its ChainID prefix, without its reference
    cp = run_image(ctx, chain[:10], "cat", "/etc/os-release")
    assert (cp.returncode, cp.stdout) == (0, "NAME=moat-test\n"), cp
    cp = run_image(ctx, "sha256:ffff", "true")
    assert cp.returncode == 125 and "not in the cache" in cp.stderr, cp
    # -e wins over the image's Env; the workspace is there
    (ctx.workspace / "note").write_text("ws\n")
    cp = run_image(ctx, ref, "sh", "-c", "echo $IMAGE_VAR; cat /workspace/note; echo $HOME",
                   flags=("-e", "IMAGE_VAR=mine"))
    assert cp.stdout == "mine\nws\n/home/moatuser\n", cp


def test_keep_keeps_the_run_layer(ctx):
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-gzip", d)
    cp = run_image(ctx, ref, "sh", "-c", "echo kept > /etc/kept", flags=("--keep", "-n", "k1"))
    assert cp.returncode == 0, cp
    assert runs(ctx) == ["k1"]
    kept = run_dir(ctx, "k1")
    assert (kept / "layer/upper/etc/kept").read_text() == "kept\n"
    # an ended run's name is free again; its kept layer stays its own
    cp = run_image(ctx, ref, "sh", "-c", "exit 0", flags=("-n", "k1"))
    assert cp.returncode == 0, cp
    assert runs(ctx) == ["k1"]
    # destroy removes the kept layer with the run
    cp = run_moat(ctx, "destroy", kept.name[:10], sub=None)
    assert cp.returncode == 0, cp.stderr
    assert runs(ctx) == []


def test_entrypoint_workdir_user(ctx):
    d = fixture_dir(ctx, "in")
    tar = fx.busybox_tar()
    img = fx.Image(layers=[tar, fx.Tar().dir("srv").file("srv/data", "d\n").bytes()],
                   config={"config": {"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["default"],
                                      "WorkingDir": "/srv", "User": "daemon"}})
    fx.write_oci(d / "layout", img)
    ref = f"oci:{d}/layout:latest"
    cp = run_image(ctx, ref)
    assert (cp.returncode, cp.stdout) == (0, "ep default\n"), cp
    cp = run_image(ctx, ref, "given", "args")
    assert (cp.returncode, cp.stdout) == (0, "ep given args\n"), cp
    # User is ignored: the agent is moatuser; WorkingDir is the cwd
    img2 = fx.Image(config={"config": {"WorkingDir": "/etc", "User": "daemon"}})
    fx.write_oci(d / "l2", img2)
    cp = run_image(ctx, f"oci:{d}/l2", "sh", "-c", "id -u; pwd")
    assert cp.stdout == "5000\n/etc\n", cp
    # no WorkingDir: /workspace; no Cmd and no command: a clear error
    img3 = fx.Image(config={"config": {}})
    fx.write_oci(d / "l3", img3)
    cp = run_image(ctx, f"oci:{d}/l3", "pwd")
    assert cp.stdout == "/workspace\n", cp
    cp = run_image(ctx, f"oci:{d}/l3")
    assert cp.returncode == 125 and "no Entrypoint or Cmd" in cp.stderr, cp


def test_without_userns_overlay_root_is_read_only(ctx):
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-gzip", d)
    env = {"MOAT_ROOT_OVERLAY": "0"}
    cp = run_image(ctx, ref, "sh", "-c",
                   "touch /x 2>/dev/null && echo wrote; touch /tmp/y && echo tmp; "
                   "grep -c ^moatuser: /etc/passwd; cat /etc/hostname", env=env,
                   flags=("-n", "ro1"))
    assert cp.returncode == 0, cp
    assert cp.stdout == "tmp\n1\nro1\n", cp
    assert runs(ctx) == []
    (chain,) = cached_roots(ctx)
    assert not (images_dir(ctx) / "roots" / chain / "rootfs/x").exists()


def test_bad_image_reference(ctx):
    cp = run_moat(ctx, "--image", "oci:", "true")
    assert cp.returncode == 125 and "no path" in cp.stderr, cp
    cp = run_moat(ctx, "--image", f"oci:{ctx.base}/nothing-here", "true")
    assert cp.returncode == 125 and "nothing-here" in cp.stderr, cp
    assert runs(ctx) == []
    # --image host is the host image
    cp = run_moat(ctx, "--image", "host", "true")
    assert cp.returncode == 0, cp


@pytest.mark.all_users
def test_run_layer_with_copied_up_directories_is_removed(ctx):
    # /var/tmp is the image's root-owned 1777 directory: writing there copies /var and
    # /var/tmp up with the image's owners (subordinate ids when rootless with them)
    d = fixture_dir(ctx, "in")
    tar = fx.busybox_tar()
    img = fx.Image(layers=[tar, fx.Tar().dir("var/tmp", 0o1777).bytes()])
    fx.write_oci(d / "layout", img)
    cp = run_image(ctx, f"oci:{d}/layout", "sh", "-c", "echo x > /var/tmp/x && cat /var/tmp/x")
    if ctx.variant == "root":
        # as root the tree keeps the layers' real ids, which the sandbox does not map:
        # overlayfs cannot copy such a directory up, and the write fails (never in the cache)
        assert cp.returncode != 0 and "Value too large" in cp.stderr, cp
        (chain,) = cached_roots(ctx)
        assert not (images_dir(ctx) / "roots" / chain / "rootfs/var/tmp/x").exists()
    else:
        assert (cp.returncode, cp.stdout) == (0, "x\n"), cp
    assert runs(ctx) == []


@pytest.mark.all_users
def test_image_trusts_moats_ca_with_the_network(ctx):
    """With the network (the default) the run's layer holds the image's bundle plus
    moat's CA; the cached image is untouched, and --network none adds nothing."""
    d = fixture_dir(ctx, "in")
    ref = make_ref("oci-gzip", d)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    cp = run_image(ctx, ref, "sh", "-c", f"cat {bundle}; echo; echo $SSL_CERT_FILE")
    assert cp.returncode == 0, cp
    ca = (ctx.moat_home / "ca" / "ca.pem").read_text()
    assert cp.stdout == ca + "\n" + bundle + "\n"
    (chain,) = cached_roots(ctx)
    rootfs = images_dir(ctx) / "roots" / chain / "rootfs"
    assert not (rootfs / "etc/ssl/certs/ca-certificates.crt").exists()
    cp = run_image(ctx, ref, "sh", "-c", f"test ! -e {bundle} && echo none",
                   flags=("--network", "none"))
    assert (cp.returncode, cp.stdout) == (0, "none\n"), cp


@pytest.mark.all_users
def test_read_only_root_trusts_moats_ca(ctx):
    """Without an overlay the root cannot take the run's bundle: it is bound over the
    image's own, or (an image without one) put under /run where the CA variables point."""
    env = {"MOAT_ROOT_OVERLAY": "0"}
    d = fixture_dir(ctx, "in")
    script = "echo $SSL_CERT_FILE $GIT_SSL_CAINFO; cat $SSL_CERT_FILE"
    cp = run_image(ctx, make_ref("oci-gzip", d), "sh", "-c", script, env=env)
    assert cp.returncode == 0, cp
    ca = (ctx.moat_home / "ca" / "ca.pem").read_text()
    run_bundle = "/run/moat/ca-certificates.crt"
    assert cp.stdout == f"{run_bundle} {run_bundle}\n" + ca, cp
    # an image with a bundle: the run sees it with moat's CA appended, the cache does not
    img = fx.Image(layers=[fx.busybox_tar(), fx.Tar().dir("etc/ssl").dir("etc/ssl/certs")
                           .file("etc/ssl/certs/ca-certificates.crt", "IMAGE BUNDLE\n").bytes()])
    fx.write_oci(d / "bundled", img)
    cp = run_image(ctx, f"oci:{d}/bundled", "sh", "-c", script, env=env, flags=("-n", "ro-ca"))
    assert cp.returncode == 0, cp
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    assert cp.stdout == f"{bundle} {bundle}\nIMAGE BUNDLE\n" + ca, cp
    for chain in cached_roots(ctx):
        rootfs = images_dir(ctx) / "roots" / chain / "rootfs"
        assert not (rootfs / "run/moat").exists()
        cached = rootfs / "etc/ssl/certs/ca-certificates.crt"
        assert not cached.exists() or cached.read_text() == "IMAGE BUNDLE\n"
    assert runs(ctx) == []
