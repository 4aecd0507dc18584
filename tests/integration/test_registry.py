"""The registry client (image/registry.h) against Debian's docker-registry on
127.0.0.1: no auth, htpasswd, token auth, TLS with a test CA, plain HTTP only
when asked, and a recording proxy for redirects, tampering and cut transfers.
Driven through build/tests/regpull (tests/fixtures/regpull.c), as root and as
the unprivileged test user."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import registry as rf  # noqa: E402
from moat_it import assert_one_error_line, run_moat  # noqa: E402

REPO = "test/busybox"
USER, PASSWORD = "moat", "s3cret-pw"

pytestmark = pytest.mark.skipif(not os.path.exists(rf.REGISTRY_BIN),
                                reason="docker-registry not installed (scripts/deps test)")


def regpull_bin():
    return os.environ.get("MOAT_REGPULL", str(Path(__file__).resolve().parents[2]
                                               / "build" / "tests" / "regpull"))


def regpull(ctx, *args, env=None, timeout=60):
    cmd = [regpull_bin(), *map(str, args)]
    if ctx.run_uid != os.geteuid():
        cmd = ["setpriv", "--reuid", str(ctx.run_uid), "--regid", str(ctx.run_gid),
               "--clear-groups", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=ctx.env(env), cwd=str(ctx.base))


def out_dir(ctx, name="out"):
    return ctx.mkdir(name, uid=ctx.run_uid, gid=ctx.run_gid)


def assert_pulled(cp, out, image):
    assert cp.returncode == 0, cp.stderr
    assert f"blob {image['layer']} {image['layer_size']}" in cp.stdout
    assert f"manifest application/vnd.oci.image.manifest.v1+json {image['manifest']}" in cp.stdout
    for d in (image["layer"], image["config"]):
        data = (out / "blobs" / "sha256" / d[7:]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == d
    man = (out / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(man).hexdigest() == image["manifest"]


def assert_error(cp, *needles):
    assert cp.returncode == 1, cp
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regpull: "), cp.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ---------------------------------------------------------------- registries (one set per module)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("registry")
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="module")
def image(work):
    layout = work / "layout"
    info = rf.write_oci_layout(layout, "v1")
    info["layout"] = layout
    return info


@pytest.fixture(scope="module")
def ca(work):
    return rf.TestCA(work / "ca")


def _serve(work, name, image, auth=None, tls=None, push_creds=None, push_cert_dir=None):
    reg = rf.Registry(work / name, auth=auth, tls=tls)
    try:
        rf.skopeo_push(image["layout"], "v1", f"{reg.host}/{REPO}:v1", creds=push_creds,
                       tls_verify=bool(push_cert_dir), cert_dir=push_cert_dir)
    except Exception:
        reg.stop()
        raise
    return reg


@pytest.fixture(scope="module")
def plain(work, image):
    reg = _serve(work, "plain", image)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def basic(work, image):
    reg = _serve(work, "basic", image, auth=("htpasswd", USER, PASSWORD),
                 push_creds=f"{USER}:{PASSWORD}")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token(work, image):
    ts = rf.TokenServer(work / "token", USER, PASSWORD)
    reg = _serve(work, "token-reg", image, auth=("token", ts), push_creds=f"{USER}:{PASSWORD}")
    yield reg, ts
    reg.stop()
    ts.stop()


@pytest.fixture(scope="module")
def token_anon(work, image):
    ts = rf.TokenServer(work / "token-anon", USER, PASSWORD, anonymous=True)
    reg = _serve(work, "token-anon-reg", image, auth=("token", ts), push_creds=f"{USER}:{PASSWORD}")
    yield reg, ts
    reg.stop()
    ts.stop()


@pytest.fixture(scope="module")
def tls(work, image, ca):
    reg = _serve(work, "tls", image, auth=("htpasswd", USER, PASSWORD), tls=ca,
                 push_creds=f"{USER}:{PASSWORD}", push_cert_dir=ca.cert_dir(work / "push-certs"))
    yield reg
    reg.stop()


# ---------------------------------------------------------------- plain HTTP, anonymous


def test_pull_anonymous_insecure(ctx, plain, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", plain.host, REPO, "v1", out)
    assert_pulled(cp, out, image)


def test_pull_by_digest(ctx, plain, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", plain.host, REPO, image["manifest"], out)
    assert_pulled(cp, out, image)
    other = "sha256:" + "0" * 64
    cp = regpull(ctx, "--tls-verify=false", plain.host, REPO, other, out_dir(ctx, "o2"))
    assert_error(cp, other, "not found")


def test_plain_http_refused_without_tls_verify_false(ctx, plain):
    cp = regpull(ctx, plain.host, REPO, "v1", out_dir(ctx))
    assert_error(cp, "registry", "127.0.0.1")


def test_missing_tag_and_repo(ctx, plain):
    cp = regpull(ctx, "--tls-verify=false", plain.host, REPO, "nosuchtag", out_dir(ctx))
    assert_error(cp, "manifest test/busybox:nosuchtag", "not found")
    cp = regpull(ctx, "--tls-verify=false", plain.host, "bad/../repo", "v1", out_dir(ctx, "o2"))
    assert_error(cp, "bad repository name")


def test_parallel_one_and_progress(ctx, plain, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", "--parallel", "1", plain.host, REPO, "v1", out,
                 env={"REGPULL_PROGRESS": "1"})
    assert_pulled(cp, out, image)
    assert f"progress {image['layer']} {image['layer_size']}/{image['layer_size']}" in cp.stderr


# ---------------------------------------------------------------- basic auth


def test_basic_auth(ctx, basic, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", basic.host, REPO,
                 "v1", out)
    assert_pulled(cp, out, image)


def test_basic_auth_wrong_password(ctx, basic):
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:wrong", basic.host, REPO, "v1",
                 out_dir(ctx))
    assert_error(cp, basic.host, "credentials for user moat refused")


def test_basic_auth_missing(ctx, basic):
    cp = regpull(ctx, "--tls-verify=false", basic.host, REPO, "v1", out_dir(ctx))
    assert_error(cp, basic.host, "authentication required")


def _auth_entry(user, pw):
    return {"auth": base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_basic_auth_from_auth_files(ctx, basic, image):
    # REGISTRY_AUTH_FILE, containers' format, keyed by host/repo namespace
    f = ctx.write(ctx.base / "auth.json",
                  json.dumps({"auths": {f"{basic.host}/test": _auth_entry(USER, PASSWORD),
                                        "other.example:5000": _auth_entry("x", "y")}}),
                  uid=ctx.run_uid, gid=ctx.run_gid, mode=0o600)
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", basic.host, REPO, "v1", out,
                 env={"REGISTRY_AUTH_FILE": str(f)})
    assert_pulled(cp, out, image)
    # docker's config.json under $HOME, keyed by URL; a wrong entry there is refused
    docker = ctx.home / ".docker"
    docker.mkdir(exist_ok=True)
    os.chown(docker, ctx.run_uid, ctx.run_gid)
    cfg = ctx.write(docker / "config.json",
                    json.dumps({"auths": {f"http://{basic.host}": _auth_entry(USER, PASSWORD)}}),
                    uid=ctx.run_uid, gid=ctx.run_gid, mode=0o600)
    try:
        out = out_dir(ctx, "o2")
        cp = regpull(ctx, "--tls-verify=false", basic.host, REPO, "v1", out)
        assert_pulled(cp, out, image)
        cfg.write_text(json.dumps({"auths": {basic.host: _auth_entry(USER, "nope")}}))
        cp = regpull(ctx, "--tls-verify=false", basic.host, REPO, "v1", out_dir(ctx, "o3"))
        assert_error(cp, "refused")
    finally:
        cfg.unlink()


# ---------------------------------------------------------------- token auth


def test_token_auth(ctx, token, image):
    reg, ts = token
    before = len(ts.requests)
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", reg.host, REPO, "v1",
                 out)
    assert_pulled(cp, out, image)
    asked = ts.requests[before:]
    assert asked, "no token was asked for"
    assert all(f"scope=repository%3A{REPO.replace('/', '%2F')}%3Apull" in r["path"] for r in asked)
    assert all("service=moat-test-registry" in r["path"] for r in asked)
    # one token per scope, reused by the parallel blob workers
    assert len(asked) == 1, asked


def test_token_auth_wrong_password(ctx, token):
    reg, ts = token
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:wrong", reg.host, REPO, "v1",
                 out_dir(ctx))
    assert_error(cp, "token from 127.0.0.1", "401", "wrong user name or password")


def test_token_auth_anonymous_refused(ctx, token):
    reg, ts = token
    cp = regpull(ctx, "--tls-verify=false", reg.host, REPO, "v1", out_dir(ctx))
    assert_error(cp, "token from 127.0.0.1", "401", "credentials needed")


def test_token_auth_anonymous_pull(ctx, token_anon, image):
    reg, ts = token_anon
    before = len(ts.requests)
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", reg.host, REPO, "v1", out)
    assert_pulled(cp, out, image)
    asked = ts.requests[before:]
    assert len(asked) == 1 and not any(k.lower() == "authorization" for k in asked[0]["headers"])


# ---------------------------------------------------------------- TLS


def test_tls_cert_dir(ctx, tls, ca, image):
    certs = ca.cert_dir(ctx.base / "certs")
    out = out_dir(ctx)
    cp = regpull(ctx, "--cert-dir", certs, "--creds", f"{USER}:{PASSWORD}", tls.host, REPO, "v1",
                 out)
    assert_pulled(cp, out, image)


def test_tls_client_cert_pair_loaded(ctx, tls, ca, image):
    certs = ca.cert_dir(ctx.base / "certs", client=True)
    out = out_dir(ctx)
    cp = regpull(ctx, "--cert-dir", certs, "--creds", f"{USER}:{PASSWORD}", tls.host, REPO, "v1",
                 out)
    assert_pulled(cp, out, image)
    # a key that is not the certificate's is refused, naming the files
    (certs / "client.key").write_bytes(rf._pem_key(rf.ec.generate_private_key(rf.ec.SECP256R1())))
    cp = regpull(ctx, "--cert-dir", certs, "--creds", f"{USER}:{PASSWORD}", tls.host, REPO, "v1",
                 out_dir(ctx, "o2"))
    assert_error(cp, "client.cert", "client.key")


def test_tls_unknown_ca_refused(ctx, tls):
    cp = regpull(ctx, "--creds", f"{USER}:{PASSWORD}", tls.host, REPO, "v1", out_dir(ctx))
    assert_error(cp, "127.0.0.1", "certificate verification failed")


def test_tls_verify_false(ctx, tls, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", tls.host, REPO, "v1",
                 out)
    assert_pulled(cp, out, image)


def test_tls_wrong_host_name_refused(ctx, tls, ca):
    # the certificate names 127.0.0.1 only: "localhost" must not pass the host check
    certs = ca.cert_dir(ctx.base / "certs")
    host = f"localhost:{tls.port}"
    cp = regpull(ctx, "--cert-dir", certs, "--creds", f"{USER}:{PASSWORD}", host, REPO, "v1",
                 out_dir(ctx))
    assert_error(cp, "certificate verification failed", "mismatch")


# ---------------------------------------------------------------- redirects, tampering, retries


@pytest.fixture
def proxy(request, basic):
    mode, cut = request.param
    p = rf.Proxy(basic, mode=mode, cut=cut)
    yield p
    p.stop()


@pytest.mark.parametrize("proxy", [("redirect", 0)], indirect=True)
def test_credentials_not_sent_on_redirect(ctx, proxy, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", proxy.host, REPO,
                 "v1", out)
    assert_pulled(cp, out, image)
    # the registry itself got the credentials, the storage host it redirected to did not
    assert any("Authorization" in r["headers"] for r in proxy.requests)
    got = proxy.blobhost.requests
    assert {r["path"].rsplit("/", 1)[-1] for r in got} == {image["layer"], image["config"]}
    for r in got:
        assert not any(k.lower() == "authorization" for k in r["headers"]), r


@pytest.mark.parametrize("proxy", [("tamper", 0)], indirect=True)
def test_blob_digest_mismatch(ctx, proxy, image):
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", proxy.host, REPO,
                 "v1", out_dir(ctx))
    assert_error(cp, "digest mismatch", "blob sha256:")
    assert image["layer"] in cp.stderr or image["config"] in cp.stderr


@pytest.mark.parametrize("proxy", [("tamper-manifest", 0)], indirect=True)
def test_manifest_digest_mismatch(ctx, proxy, image):
    # by tag: the registry's Docker-Content-Digest no longer matches the bytes
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", proxy.host, REPO,
                 "v1", out_dir(ctx))
    assert_error(cp, "manifest digest mismatch", f"Docker-Content-Digest {image['manifest']}")
    # by digest: the bytes do not hash to the digest asked for
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", proxy.host, REPO,
                 image["manifest"], out_dir(ctx, "o2"))
    assert_error(cp, "manifest digest mismatch", f"{REPO}@{image['manifest']}")


@pytest.mark.parametrize("proxy", [("cutoff", 1)], indirect=True)
def test_cut_transfer_retried(ctx, proxy, image):
    out = out_dir(ctx)
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", "--parallel", "1",
                 proxy.host, REPO, "v1", out)
    assert_pulled(cp, out, image)
    blob_gets = [r for r in proxy.requests if "/blobs/" in r["path"]]
    assert len(blob_gets) >= 3  # two blobs, one of them fetched twice


@pytest.mark.parametrize("proxy", [("cutoff", 100)], indirect=True)
def test_cut_transfer_gives_up(ctx, proxy):
    cp = regpull(ctx, "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", "--attempts", "2",
                 proxy.host, REPO, "v1", out_dir(ctx))
    assert_error(cp, "after 2 attempts", "blob sha256:")


def test_registry_storage_edit_detected(ctx, work, image):
    """A blob edited in the registry's storage: its bytes no longer match the digest."""
    reg = _serve(work, f"edit-{ctx.variant}", image)
    try:
        p = reg.blob_path(image["layer"])
        data = bytearray(p.read_bytes())
        data[100] ^= 0xFF
        p.write_bytes(bytes(data))
        cp = regpull(ctx, "--tls-verify=false", reg.host, REPO, "v1", out_dir(ctx))
        assert_error(cp, f"blob {image['layer']}: digest mismatch")
    finally:
        reg.stop()


# ---------------------------------------------------------------- through moat image pull / run


def _images(ctx):
    """What the store holds: cached roots, blobs, leftovers in tmp."""
    base = ctx.moat_home / "images"
    return {sub: sorted(os.listdir(base / sub)) if (base / sub).exists() else []
            for sub in ("roots", "blobs/sha256", "tmp")}


def moat_image(ctx, *args, env=None):
    return run_moat(ctx, *args, sub="image", env=env, timeout=120)


def test_moat_pull_and_run(ctx, basic, image):
    ref = f"docker://{basic.host}/{REPO}:v1"
    flags = ["--tls-verify=false", "--creds", f"{USER}:{PASSWORD}"]
    cp = moat_image(ctx, "pull", *flags, ref)
    assert cp.returncode == 0, cp.stderr
    cp = moat_image(ctx, "ls")
    assert ref in cp.stdout, cp.stdout
    assert len(_images(ctx)["roots"]) == 1
    cp = run_moat(ctx, "--image", ref, *flags, "--", "/bin/busybox", "cat", "/etc/motd",
                  timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "moat registry test image\n"


def test_moat_pull_default_registry_and_token(ctx, token, image):
    reg, ts = token
    # plain REPO:TAG names $MOAT_REGISTRY
    cp = moat_image(ctx, "pull", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                    f"{REPO}:v1", env={"MOAT_REGISTRY": reg.host})
    assert cp.returncode == 0, cp.stderr
    assert len(_images(ctx)["roots"]) == 1


def test_moat_pull_tls_cert_dir_and_auth_file(ctx, tls, ca, image):
    certs = ca.cert_dir(ctx.base / "certs")
    auth = ctx.write(ctx.base / "auth.json",
                     json.dumps({"auths": {tls.host: _auth_entry(USER, PASSWORD)}}),
                     uid=ctx.run_uid, gid=ctx.run_gid, mode=0o600)
    ref = f"docker://{tls.host}/{REPO}:v1"
    cp = moat_image(ctx, "pull", ref, env={"REGISTRY_AUTH_FILE": str(auth)})
    assert_one_error_line(cp, "certificate verification failed")
    cp = moat_image(ctx, "pull", "--cert-dir", certs, ref, env={"REGISTRY_AUTH_FILE": str(auth)})
    assert cp.returncode == 0, cp.stderr


def test_moat_pull_wrong_password(ctx, basic):
    cp = moat_image(ctx, "pull", "--tls-verify=false", "--creds", f"{USER}:wrong",
                    f"docker://{basic.host}/{REPO}:v1")
    assert cp.returncode == 125
    assert_one_error_line(cp, basic.host, "credentials for user moat refused")
    assert _images(ctx)["roots"] == []


@pytest.mark.parametrize("proxy", [("redirect", 0)], indirect=True)
def test_moat_pull_redirect_keeps_credentials_home(ctx, proxy, image):
    cp = moat_image(ctx, "pull", "-q", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                    f"docker://{proxy.host}/{REPO}:v1")
    assert cp.returncode == 0, cp.stderr
    assert proxy.blobhost.requests, "the blobs were not fetched through the redirect"
    for r in proxy.blobhost.requests:
        assert not any(k.lower() == "authorization" for k in r["headers"]), r


@pytest.mark.parametrize("proxy", [("tamper", 0)], indirect=True)
def test_moat_pull_digest_mismatch_leaves_cache_untouched(ctx, proxy, image):
    cp = moat_image(ctx, "pull", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
                    f"docker://{proxy.host}/{REPO}:v1")
    assert cp.returncode == 125
    line = assert_one_error_line(cp, "digest mismatch", "blob sha256:")
    assert image["config"] in line or image["layer"] in line
    assert _images(ctx) == {"roots": [], "blobs/sha256": [], "tmp": []}
