"""The offline Hub itself: the wire format the huggingface_hub client relies on (the Hub API this server speaks)."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx2
import pytest
from hub_server import READ_TOKEN, USER, WRITE_TOKEN, git_sha1
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = f"{USER}/server-test"
AUTH = {"authorization": f"Bearer {WRITE_TOKEN}"}
WEIGHTS = bytes(range(256)) * 40  # binary: goes to LFS
NOTES = b"hello\n"


@pytest.fixture()
def api(hub) -> HfApi:
    api = HfApi()
    api.create_repo(REPO)
    api.create_commit(
        REPO,
        [
            CommitOperationAdd("notes.txt", b"hello\n"),
            CommitOperationAdd("weights/model.safetensors", WEIGHTS),
            CommitOperationAdd("weights/config.json", b'{"a": 1}'),
        ],
        commit_message="files",
    )
    return api


def test_create_repo_conflict_is_409_with_url(hub, api):
    r = httpx2.post(f"{hub.endpoint}/api/repos/create", headers=AUTH, json={"name": "server-test", "type": "model"})
    assert r.status_code == 409 and r.json()["url"] == f"{hub.endpoint}/{REPO}"
    assert api.create_repo(REPO, exist_ok=True) == f"{hub.endpoint}/{REPO}"
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_repo(REPO)


def test_not_found_errors_carry_x_error_code(hub, api, tmp_path):
    r = httpx2.get(f"{hub.endpoint}/api/models/{USER}/nope", headers=AUTH)
    assert (r.status_code, r.headers["x-error-code"]) == (404, "RepoNotFound")
    r = httpx2.get(f"{hub.endpoint}/api/models/{REPO}/revision/nope", headers=AUTH)
    assert (r.status_code, r.headers["x-error-code"]) == (404, "RevisionNotFound")
    r = httpx2.head(f"{hub.endpoint}/{REPO}/resolve/main/missing.txt", headers=AUTH)
    head = api.repo_info(REPO).sha
    assert (r.status_code, r.headers["x-error-code"], r.headers["x-repo-commit"]) == (
        404,
        "EntryNotFound",
        head,
    )

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{USER}/nope", "x", cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "notes.txt", revision="nope", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.txt", cache_dir=tmp_path)


def test_resolve_headers_regular_and_lfs(hub, api):
    sha = api.repo_info(REPO).sha
    r = httpx2.head(f"{hub.endpoint}/{REPO}/resolve/main/notes.txt", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["etag"] == f'"{git_sha1(NOTES)}"' and r.headers["x-repo-commit"] == sha
    assert r.headers["content-length"] == "6"
    assert not any(h.lower().startswith("x-xet") for h in r.headers)

    r = httpx2.head(f"{hub.endpoint}/{REPO}/resolve/main/weights/model.safetensors", headers=AUTH)
    assert r.status_code == 302
    assert r.headers["x-linked-etag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    assert r.headers["x-linked-size"] == str(len(WEIGHTS)) and r.headers["x-repo-commit"] == sha
    location = r.headers["location"]
    assert location.startswith(hub.lfs_endpoint) and hub.lfs_endpoint != hub.endpoint  # another origin
    assert httpx2.get(location).content == WEIGHTS
    part = httpx2.get(location, headers={"range": "bytes=100-"})  # how the client resumes a download
    assert (part.status_code, part.content) == (206, WEIGHTS[100:])
    assert part.headers["content-range"] == f"bytes 100-{len(WEIGHTS) - 1}/{len(WEIGHTS)}"


def test_client_version_is_the_one_this_server_was_checked_against():
    import huggingface_hub

    # pyproject pins huggingface_hub>=2.4,<2.5: a new minor may change the wire format (see HUB_API.md).
    assert huggingface_hub.__version__.startswith("2.4."), huggingface_hub.__version__


def test_downloads_by_branch_tag_and_commit(hub, api, tmp_path):
    first = api.repo_info(REPO).sha
    api.create_tag(REPO, tag="v1")
    api.create_branch(REPO, branch="dev")
    api.upload_file(path_or_fileobj=b"changed\n", path_in_repo="notes.txt", repo_id=REPO, revision="dev")
    refs = api.list_repo_refs(REPO)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    read = lambda rev: open(hf_hub_download(REPO, "notes.txt", revision=rev, cache_dir=tmp_path)).read()  # noqa: E731
    assert read("main") == read("v1") == read(first) == "hello\n"
    assert read("dev") == "changed\n"
    assert len(api.list_repo_commits(REPO, revision="dev")) == 3


def test_tree_listing_is_paginated(hub, api):
    hub.page_size = 2
    try:
        entries = list(api.list_repo_tree(REPO, recursive=True))
        top = list(api.list_repo_tree(REPO))
        sub = list(api.list_repo_tree(REPO, path_in_repo="weights"))
    finally:
        hub.page_size = 50
    paths = [e.path for e in entries]
    assert paths == [
        ".gitattributes",
        "notes.txt",
        "weights",
        "weights/config.json",
        "weights/model.safetensors",
    ]
    assert sum(1 for _, p in hub.requests if "/tree/" in p) >= 3 + 2 + 1  # followed the Link headers
    assert [e.path for e in top] == [".gitattributes", "notes.txt", "weights"]
    assert [e.path for e in sub] == ["weights/config.json", "weights/model.safetensors"]
    lfs = next(e for e in entries if e.path == "weights/model.safetensors")
    assert lfs.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest() and lfs.size == len(WEIGHTS)
    info = api.model_info(REPO, files_metadata=True)
    assert {s.rfilename: s.size for s in info.siblings}["notes.txt"] == 6


def test_preupload_modes_and_oids(hub, api):
    files = [
        {"path": "notes.txt", "sample": base64.b64encode(b"hello\n").decode(), "size": 6},
        {"path": "new.txt", "sample": base64.b64encode(b"text").decode(), "size": 4},
        {"path": "blob.dat", "sample": base64.b64encode(b"\x00\x01").decode(), "size": 2},
        {"path": "weights/model.safetensors", "sample": "", "size": len(WEIGHTS)},
    ]
    r = httpx2.post(f"{hub.endpoint}/api/models/{REPO}/preupload/main", headers=AUTH, json={"files": files})
    got = {f["path"]: (f["uploadMode"], f.get("oid")) for f in r.json()["files"]}
    assert got == {
        "notes.txt": ("regular", git_sha1(b"hello\n")),
        "new.txt": ("regular", None),
        "blob.dat": ("lfs", None),
        "weights/model.safetensors": ("lfs", hashlib.sha256(WEIGHTS).hexdigest()),
    }


def _commit(hub, lines: list[dict]) -> httpx2.Response:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    headers = {**AUTH, "content-type": "application/x-ndjson"}
    return httpx2.post(f"{hub.endpoint}/api/models/{REPO}/commit/main", headers=headers, content=body)


def test_a_commit_is_atomic(hub, api):
    before = api.repo_info(REPO).sha
    header = {"key": "header", "value": {"summary": "half"}}
    new_file = {
        "key": "file",
        "value": {"path": "new.txt", "content": base64.b64encode(b"x").decode(), "encoding": "base64"},
    }
    missing_lfs = {
        "key": "lfsFile",
        "value": {"path": "big.bin", "algo": "sha256", "oid": "0" * 64, "size": 9},
    }
    r = _commit(hub, [header, new_file, missing_lfs])
    assert r.status_code == 422
    assert api.repo_info(REPO).sha == before and "new.txt" not in hub.head_files(REPO)

    r = _commit(hub, [header, new_file, {"key": "deletedFile", "value": {"path": "nope.txt"}}])
    assert (r.status_code, r.headers["x-error-code"]) == (404, "EntryNotFound")
    assert api.repo_info(REPO).sha == before

    r = _commit(hub, [header, new_file, {"key": "deletedFolder", "value": {"path": "weights"}}])
    assert r.status_code == 200 and r.json()["commitUrl"].startswith(hub.endpoint)
    assert len(r.json()["commitOid"]) == 40
    assert set(hub.head_files(REPO)) == {".gitattributes", "notes.txt", "new.txt"}


def test_parent_commit_mismatch_is_refused(hub, api):
    old = api.repo_info(REPO).sha
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id=REPO)
    with pytest.raises(HfHubHTTPError, match="412"):
        api.create_commit(REPO, [CommitOperationDelete("notes.txt")], commit_message="late", parent_commit=old)
    assert "notes.txt" in hub.head_files(REPO)


def test_auth_read_token_private_repos(hub, api, tmp_path):
    assert HfApi(token=READ_TOKEN).whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError, match="403"):
        HfApi(token=READ_TOKEN).create_repo(f"{USER}/ro")
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(token="hf_wrong").whoami()
    api.create_repo(f"{USER}/secret", private=True)
    anonymous = httpx2.get(f"{hub.endpoint}/api/models/{USER}/secret")
    assert (anonymous.status_code, anonymous.headers["x-error-code"]) == (404, "RepoNotFound")
    assert HfApi(token=READ_TOKEN).model_info(f"{USER}/secret").private


def test_validate_yaml(hub):
    ModelCard("---\nlicense: mit\ntags: [vae]\n---\n# ok\n").validate()
    with pytest.raises(ValueError, match="license"):
        ModelCard("---\nlicense: not-a-license\n---\n# bad\n").validate()
    r = httpx2.post(
        f"{hub.endpoint}/api/validate-yaml",
        json={"content": "---\nlicense: [mit\n---\n# broken\n", "repoType": "model"},
    )
    assert r.status_code == 400 and r.json()["errors"][0]["message"].startswith("Invalid YAML")
    r = httpx2.post(
        f"{hub.endpoint}/api/validate-yaml",
        json={"content": "---\nmodel-index: 3\n---\n", "repoType": "model"},
    )
    assert r.status_code == 400 and "model-index" in r.json()["errors"][0]["message"]


def test_delete_files_and_repo(hub, api):
    api.delete_file("notes.txt", REPO)
    api.delete_folder("weights", REPO)
    assert api.list_repo_files(REPO) == [".gitattributes"]
    api.delete_repo(REPO)
    assert not api.repo_exists(REPO)


def test_collections(hub, api):
    c = api.create_collection("My models", namespace=USER)
    assert c.slug.startswith(f"{USER}/my-models-")
    assert api.create_collection("My models", namespace=USER, exists_ok=True).slug == c.slug
    c = api.add_collection_item(c.slug, item_id=REPO, item_type="model", note="first")
    assert [(i.item_id, i.item_type, i.note) for i in c.items] == [(REPO, "model", "first")]
    with pytest.raises(HfHubHTTPError, match="409"):
        api.add_collection_item(c.slug, item_id=REPO, item_type="model")
    assert len(api.add_collection_item(c.slug, item_id=REPO, item_type="model", exists_ok=True).items) == 1
    with pytest.raises(HfHubHTTPError, match="404"):
        api.add_collection_item(c.slug, item_id=f"{USER}/missing", item_type="model")
    assert [x.slug for x in api.list_collections(owner=USER)] == [c.slug]
    api.delete_collection_item(c.slug, c.items[0].item_object_id)
    assert api.get_collection(c.slug).items == []
    api.delete_collection(c.slug)
    with pytest.raises(HfHubHTTPError, match="404"):
        api.get_collection(c.slug)


def test_fault_injection(hub, api):
    hub.fail("GET", r"/api/models/.*/refs$", status=503, times=2)
    for expected in (503, 503, 200):
        assert httpx2.get(f"{hub.endpoint}/api/models/{REPO}/refs", headers=AUTH).status_code == expected
    hub.fail("*", r"/api/whoami", status=500, times=None)
    assert all(httpx2.get(f"{hub.endpoint}/api/whoami-v2", headers=AUTH).status_code == 500 for _ in range(3))


def test_unrouted_requests_are_recorded(hub):
    r = httpx2.get(f"{hub.endpoint}/api/models/{USER}/x/something-new")
    assert r.status_code == 404
    assert hub.unmatched == [f"GET /api/models/{USER}/x/something-new?"]
    hub.unmatched.clear()  # the `hub` fixture would otherwise fail this test at teardown
