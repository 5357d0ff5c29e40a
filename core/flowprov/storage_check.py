"""Checking that an object-storage root can be used, within seconds, and saying why not in the
store's own terms: an unknown key, a key without permission, no such bucket, an endpoint that does
not speak S3 (or GCS), no server at all.

The check lists at most one object under the root with a GET: S3 and GCS give their reason in the
body of a GET error, while a HEAD (what `exists`/`info` send) carries none — the same "403
Forbidden" for a wrong key and a key without permission. A plain web server answers a HEAD with
200 as readily as a bucket would, and the listing's answer shows which of the two it is.

Time is bounded twice: the client gets short timeouts and a single attempt, and the whole probe
(credential lookup included) runs in a worker thread that is given up on at the deadline.
"""

from __future__ import annotations

import threading
import time

from .errors import StorageError

CHECK_SECONDS = 6.0  # the whole check: `flowprov init` (its start-up included) answers within 10 s
CHECK_CONNECT_TIMEOUT = 3.0
CHECK_READ_TIMEOUT = 4.0

# The store's error codes (S3 ones; GCS's are HTTP statuses with a JSON reason)
_UNKNOWN_KEY = {
    "InvalidAccessKeyId": "the store does not know access key {key}",
    "InvalidClientTokenId": "the store does not know access key {key}",
    "SignatureDoesNotMatch": "the secret does not match access key {key}",
    "InvalidToken": "the session token of access key {key} is not valid",
    "ExpiredToken": "the session token of access key {key} has expired",
    "TokenRefreshRequired": "the session token of access key {key} has expired",
    "InvalidSecurity": "the credentials of access key {key} are not valid",
}
_NO_PERMISSION = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "NotSignedUp"}
_WRONG_REGION = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
}

_CREDENTIAL_SOURCES = {
    "env": "the environment",
    "shared-credentials-file": "~/.aws/credentials",
    "custom-process": "the profile's credential_process",
    "config-file": "~/.aws/config",
    "iam-role": "the machine's IAM role",
    "container-role": "the container's role",
    "assume-role": "an assumed role",
    "assume-role-with-web-identity": "a web-identity role",
    "sso": "AWS SSO",
    "explicit": "the storage options",
}


class StorageCheckError(StorageError):
    """A storage root that cannot be used; `kind` says why in a few words ("unknown key", "no
    permission", "no such bucket", "endpoint does not speak S3", "cannot connect", ...)."""

    def __init__(self, message: str, *, kind: str, root: str, endpoint: str):
        super().__init__(message)
        self.kind = kind
        self.root = root
        self.endpoint = endpoint


def check_root(root, timeout: float = CHECK_SECONDS) -> None:
    """Raise StorageCheckError unless `root` (a remote StorageRoot) can be listed; return within
    `timeout` seconds whatever the endpoint does."""
    probe = {"s3": _probe_s3, "gs": _probe_gcs}.get(root.type, _probe_other)
    done: dict = {}
    deadline = time.monotonic() + timeout

    def run():
        try:
            probe(root, deadline, timeout)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            done["error"] = e
        else:
            done["ok"] = True

    worker = threading.Thread(target=run, name=f"flowprov-check {root.root}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()) + 0.5)
    if "error" in done:
        raise done["error"]
    if "ok" not in done:  # still waiting on something the timeouts do not cover (credentials)
        ep, src = _endpoint(root)
        raise _fail(
            root,
            ep,
            "no answer",
            f"nothing came back within {timeout:.0f} s",
            f"is endpoint_url ({src}) the address of the {_store(root)} store, and is it up?",
            reach=True,
        )


def _store(root) -> str:
    return {"s3": "S3", "gs": "GCS"}.get(root.type, root.type)


def _bucket_prefix(root) -> tuple[str, str]:
    rest = root.root.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return bucket, (prefix.rstrip("/") + "/" if prefix else "")


def _endpoint(root, fs=None) -> tuple[str, str]:
    """(the endpoint in use, where its setting comes from)."""
    eff = root.effective_options()
    ep, src = eff.get("endpoint_url", (None, None))
    if fs is not None and root.type == "s3":
        client = getattr(fs, "_s3", None)
        ep = getattr(getattr(client, "meta", None), "endpoint_url", None) or ep
    if fs is not None and root.type == "gs":
        ep = getattr(fs, "_location", None) or ep
    if ep is None:
        ep = {"s3": "the AWS endpoint", "gs": "https://storage.googleapis.com"}.get(root.type, "?")
        src = "the default"
    src = {"instance": "from the instance", None: "the default"}.get(src, src)
    return ep, src if src == "the default" or src.startswith("from ") else f"from {src}"


def _fail(root, endpoint: str, kind: str, what: str, todo: str, reach: bool = False):
    verb = "reach" if reach else "use"
    return StorageCheckError(
        f"cannot {verb} storage {root.root} at {endpoint}: {kind} — {what}; {todo}",
        kind=kind,
        root=root.root,
        endpoint=endpoint,
    )


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _names(e: BaseException) -> set[str]:
    return {type(x).__name__ for x in _chain(e)} | {
        c.__name__ for x in _chain(e) for c in type(x).__mro__
    }


def _transport_failure(root, ep: str, src: str, e: BaseException, timeout_s: float):
    """A failure below the store's protocol (no connection, no answer, not HTTP), or None."""
    names = _names(e)
    store = _store(root)
    if names & {"TimeoutError", "FSTimeoutError", "ReadTimeoutError", "ConnectTimeoutError",
                "ServerTimeoutError", "SocketTimeoutError", "CancelledError"}:  # fmt: skip
        return _fail(
            root,
            ep,
            "no answer",
            f"nothing came back within {timeout_s:.0f} s",
            f"is endpoint_url ({src}) the address of the {store} store, and is it up?",
            reach=True,
        )
    if names & {
        "BadStatusLine",
        "HttpProcessingError",
        "ClientResponseError",
        "ResponseParserError",
    }:
        return _fail(
            root,
            ep,
            f"endpoint does not speak {store}",
            "what answered there is not an HTTP server",
            f"fix endpoint_url ({src})",
            reach=True,
        )
    if names & {
        "SSLError",
        "ClientSSLError",
        "SSLCertVerificationError",
        "ClientConnectorCertificateError",
    }:
        return _fail(
            root,
            ep,
            "cannot connect",
            f"TLS failed ({_last_words(e)})",
            f"check endpoint_url ({src}): http:// or https://, and the server's certificate",
            reach=True,
        )
    if names & {"EndpointConnectionError", "ConnectionError", "ClientConnectorError",
                "ConnectionRefusedError", "gaierror", "ConnectionClosedError",
                "ServerDisconnectedError", "ClientOSError"}:  # fmt: skip
        return _fail(
            root,
            ep,
            "cannot connect",
            _last_words(e),
            f"is the server up, and is endpoint_url ({src}) its address?",
            reach=True,
        )
    return None


def _last_words(e: BaseException) -> str:
    """The innermost cause's message, on one line."""
    last = list(_chain(e))[-1]
    msg = " ".join(str(last).split()) or type(last).__name__
    return msg[:200]


# -- S3 -----------------------------------------------------------------------------------------


def _probe_s3(root, deadline: float, total: float) -> None:
    import asyncio

    from fsspec.asyn import sync

    bucket, prefix = _bucket_prefix(root)
    fs = root.build_fs(for_check=True)
    budget = max(0.5, deadline - time.monotonic() - 0.2)

    async def listing():
        return await asyncio.wait_for(
            fs._call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1, **fs.req_kw),
            budget,
        )

    try:
        out = sync(fs.loop, listing)
    except Exception as e:  # noqa: BLE001 - classified below
        raise _s3_failure(root, fs, bucket, e, total) from e
    if "Name" not in out and "IsTruncated" not in out:  # a 200 that is not a bucket listing
        ep, src = _endpoint(root, fs)
        meta = out.get("ResponseMetadata", {})
        raise _fail(
            root,
            ep,
            "endpoint does not speak S3",
            f"a listing of bucket {bucket!r} was answered with HTTP {meta.get('HTTPStatusCode')} "
            f"({_ctype(meta)}), not an S3 listing",
            f"fix endpoint_url ({src})",
            reach=True,
        )


def _ctype(meta: dict) -> str:
    return (meta.get("HTTPHeaders") or {}).get("content-type") or "no content type"


def _client_error(e: BaseException):
    for x in _chain(e):
        if isinstance(getattr(x, "response", None), dict) and "Error" in x.response:
            return x
    return None


def _s3_failure(root, fs, bucket: str, e: BaseException, total: float) -> StorageCheckError:
    ep, src = _endpoint(root, fs)
    ce = _client_error(e)
    if ce is None:
        names = _names(e)
        if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
            return _fail(
                root,
                ep,
                "no credentials",
                f"no usable AWS key was found ({_last_words(e)})",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or put the key "
                "in ~/.aws/credentials (or set the storage option anon=true for a public bucket)",
            )
        failure = _transport_failure(root, ep, src, e, total)
        if failure is not None:
            return failure
        return _fail(root, ep, "error", f"{type(e).__name__}: {_last_words(e)}", "see above")
    err = ce.response.get("Error", {})
    code = str(err.get("Code") or "")
    message = " ".join(str(err.get("Message") or "").split())
    meta = ce.response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    if code in _UNKNOWN_KEY:
        key, where = _access_key(fs)
        return _fail(
            root,
            ep,
            "unknown key",
            _UNKNOWN_KEY[code].format(key=key) + f" ({code})",
            f"use a key this store issued{where}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or ~/.aws/credentials",
        )
    if code in _NO_PERMISSION:
        key, where = _access_key(fs)
        return _fail(
            root,
            ep,
            "no permission",
            f"access key {key} may not list bucket {bucket!r} ({code}: {message})",
            f"grant that key s3:ListBucket, s3:GetObject and s3:PutObject on the bucket, or use "
            f"another key{where}",
        )
    if code == "NoSuchBucket":
        return _fail(
            root,
            ep,
            "no such bucket",
            f"bucket {bucket!r} does not exist at this endpoint ({code})",
            f"create it, or fix the root's URL or endpoint_url ({src})",
        )
    if code in _WRONG_REGION:
        region = err.get("Region") or (meta.get("HTTPHeaders") or {}).get("x-amz-bucket-region")
        there = f" (the bucket is in {region})" if region else ""
        return _fail(
            root,
            ep,
            "wrong region",
            f"{code}: {message}{there}",
            "set the region (storage option region_name, or AWS_REGION)",
        )
    if not code or code.isdigit():  # an HTTP error without an S3 error document
        return _fail(
            root,
            ep,
            "endpoint does not speak S3",
            f"a listing of bucket {bucket!r} was answered with HTTP {status} ({_ctype(meta)}) "
            "and no S3 error",
            f"fix endpoint_url ({src})",
            reach=True,
        )
    return _fail(
        root, ep, "refused", f"the store answered {code}: {message}", "see its documentation"
    )


def _access_key(fs) -> tuple[str, str]:
    """(the access key id in use, shortened; " (from SOURCE)" or "")."""
    key, method = getattr(fs, "key", None), "explicit" if getattr(fs, "key", None) else None
    if not key:
        creds = getattr(getattr(fs, "session", None), "_credentials", None)
        key = getattr(creds, "_access_key", None) or getattr(creds, "access_key", None)
        method = getattr(creds, "method", None)
    if not key:
        return "(none)", ""
    key = str(key)
    shown = key if len(key) <= 8 else f"{key[:4]}…{key[-4:]}"
    src = _CREDENTIAL_SOURCES.get(method or "", method)
    return shown, (f" (this one comes from {src})" if src else "")


def store_reason(e: BaseException) -> str | None:
    """What the store said, in the words of `check`, for an error of an everyday S3 call; None
    when it said nothing classifiable."""
    ce = _client_error(e)
    if ce is None:
        return None
    err = ce.response.get("Error", {})
    code = str(err.get("Code") or "")
    message = " ".join(str(err.get("Message") or "").split())
    if code in _UNKNOWN_KEY:
        return f"unknown key ({code}: {message})"
    if code in _NO_PERMISSION:
        return f"no permission ({code}: {message})"
    if code == "NoSuchBucket":
        return f"no such bucket ({code}: {message})"
    if code == "403":
        return (
            "Forbidden (HTTP 403 to a request that carries no reason: a key the store does not "
            "know, or one without permission; `flowprov storage add ROOT` checks which)"
        )
    return None


# -- GCS ----------------------------------------------------------------------------------------


def _probe_gcs(root, deadline: float, total: float) -> None:
    import asyncio
    import json

    import aiohttp
    from fsspec.asyn import sync

    bucket, prefix = _bucket_prefix(root)
    budget = max(0.5, deadline - time.monotonic() - 0.2)
    fs = None
    try:
        fs = root.build_fs(for_check=True)

        async def listing():
            await fs._set_session()
            params = fs._get_params({"maxResults": "1", "prefix": prefix or None})
            async with fs.session.request(
                "GET",
                fs._format_path("b/{}/o", (bucket,)),
                params=params,
                headers=fs._get_headers(None),
                timeout=aiohttp.ClientTimeout(total=budget, connect=CHECK_CONNECT_TIMEOUT),
            ) as r:
                return r.status, r.headers.get("Content-Type", ""), await r.read()

        status, ctype, body = sync(fs.loop, lambda: asyncio.wait_for(listing(), budget + 0.1))
    except Exception as e:  # noqa: BLE001 - classified below
        ep, src = _endpoint(root, fs)
        names = _names(e)
        if names & {"DefaultCredentialsError", "RefreshError", "GoogleAuthError"}:
            raise _fail(
                root,
                ep,
                "no credentials",
                _last_words(e),
                "set GOOGLE_APPLICATION_CREDENTIALS to a service-account file, or run "
                "`gcloud auth application-default login` (or set the storage option token=anon "
                "for a public bucket)",
            ) from e
        failure = _transport_failure(root, ep, src, e, total)
        raise (failure or _fail(root, ep, "error", _last_words(e), "see above")) from e
    ep, src = _endpoint(root, fs)
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    reason = ""
    if isinstance(error, dict):
        reason = " ".join(str(error.get("message", "")).split())
    elif isinstance(error, str):
        reason = error
    if status == 200 and isinstance(doc, dict) and doc.get("kind") == "storage#objects":
        return
    speaks = isinstance(doc, dict) or (not body and status == 404)
    if not speaks or status == 200:
        raise _fail(
            root,
            ep,
            "endpoint does not speak GCS",
            f"a listing of bucket {bucket!r} was answered with HTTP {status} "
            f"({ctype or 'no content type'}), not a GCS answer",
            f"fix endpoint_url ({src})",
            reach=True,
        )
    if status == 404:
        raise _fail(
            root,
            ep,
            "no such bucket",
            f"bucket {bucket!r} does not exist at this endpoint"
            + (f" ({reason})" if reason else ""),
            f"create it, or fix the root's URL or endpoint_url ({src})",
        )
    if status == 401:
        raise _fail(
            root,
            ep,
            "unknown key",
            f"the store does not accept these credentials ({reason or 'HTTP 401'})",
            "set GOOGLE_APPLICATION_CREDENTIALS to a valid service-account file, or run "
            "`gcloud auth application-default login`",
        )
    if status == 403:
        raise _fail(
            root,
            ep,
            "no permission",
            f"these credentials may not list bucket {bucket!r} ({reason or 'HTTP 403'})",
            "grant them storage.objects.list, .get and .create on the bucket (e.g. the Storage "
            "Object Admin role), or use other credentials",
        )
    raise _fail(root, ep, "refused", f"the store answered HTTP {status}: {reason}", "see above")


# -- other fsspec stores ------------------------------------------------------------------------


def _probe_other(root, deadline: float, total: float) -> None:
    bucket = root.root.split("://", 1)[1].split("/", 1)[0]
    from .storage import remote_errors

    try:
        with remote_errors(f"reach storage {root.root}"):
            root.fs.info(bucket)  # `exists` would hide a connection error as False
    except FileNotFoundError:
        raise StorageCheckError(
            f"storage {root.root}: bucket {bucket!r} does not exist or is not visible "
            "with these credentials",
            kind="no such bucket",
            root=root.root,
            endpoint="",
        ) from None
