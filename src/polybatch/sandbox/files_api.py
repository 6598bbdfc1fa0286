"""``FilesApi``: the OpenAI-style Files API, one implementation for every vendor that has it.

OpenAI, Azure OpenAI, every OpenAI-compatible provider and Mistral all serve ``POST /files``
(multipart upload of a JSONL file), ``GET /files`` (list), ``GET /files/{id}``, ``DELETE
/files/{id}`` and ``GET /files/{id}/content``. They differ in small ways, each a class attribute or
a hook here: the path (:attr:`FilesApi.files_path`), the purposes accepted and the default one, the
file object's JSON (:meth:`FilesApi.file_object`), how an upload's expiry is given
(:meth:`FilesApi.upload_expiry`), size and name limits (:meth:`FilesApi.check_upload`), what an
upload answers (Azure: ``201`` and ``status: "pending"``, :meth:`FilesApi.upload_response`), and
how a list is paged (:meth:`FilesApi.files_page`).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .api import KindRoute, ProviderApi, RouteKind, cursor_list, cursor_page
from .engine import SandboxFile


class FilesApi(ProviderApi):
    """The Files routes over the engine's file store (namespace :attr:`ns`)."""

    #: where the routes live, relative to the provider's mount
    files_path: str = "/v1/files"
    #: the ``purpose`` values an upload may give
    upload_purposes: frozenset[str] = frozenset({"batch"})
    #: the purpose of an upload that gives none (None: the upload is refused)
    default_purpose: str | None = None
    #: the name of an upload whose part has no filename
    default_filename: str = "upload"
    #: whether a download honours ``?offset=N`` (OpenAI's content endpoint does)
    content_offset: bool = True

    # -- hooks -----------------------------------------------------------------------------
    def file_object(self, f: SandboxFile) -> dict[str, Any]:
        """The file as the API returns it (OpenAI's shape by default)."""
        return {
            "id": f.id,
            "object": "file",
            "bytes": len(f.data),
            "created_at": f.created_at,
            "expires_at": f.expires_at,
            "filename": f.filename,
            "purpose": f.purpose,
            "status": "processed",
            "status_details": None,
        }

    def retrieved_file_object(self, f: SandboxFile) -> dict[str, Any]:
        """The file as ``GET /files/{id}`` returns it."""
        return self.file_object(f)

    def bad_purpose(self, purpose: object) -> Response:
        """The answer to an upload with a purpose not in :attr:`upload_purposes`."""
        return self.error(
            400,
            f"Invalid value for 'purpose': {purpose!r}. "
            f"Supported values are: {', '.join(sorted(self.upload_purposes))}.",
            param="purpose",
            code="invalid_value",
        )

    def missing_file(self) -> Response:
        """The answer to an upload without a ``file`` part."""
        return self.error(400, "Missing required parameter: 'file'.", param="file")

    def upload_expiry(self, form: FormData, purpose: str) -> int | Response | None:
        """Seconds the uploaded file lives (None: forever), or the response refusing the upload."""
        return None

    def check_upload(self, purpose: str, filename: str, data: bytes) -> Response | None:
        """The response refusing an upload's content (size, name), or None."""
        return None

    def upload_response(self, f: SandboxFile) -> Response:
        """What a successful upload answers."""
        return self.json(self.file_object(f))

    def files_page(self, request: Request, files: list[SandboxFile]) -> Response:
        """One page of ``files`` (live, of the asked purpose, oldest first) as the list answers
        it: OpenAI's ``order``/``after``/``limit`` cursor by default."""
        q = request.query_params
        order = q.get("order", "desc")
        try:
            limit = int(q.get("limit", "10000"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 10_000 or order not in ("asc", "desc"):
            return self.error(
                400, "Invalid 'limit' or 'order'.", param="limit", code="invalid_value"
            )
        if order == "desc":
            files = files[::-1]
        page, has_more = cursor_page(files, [f.id for f in files], q.get("after"), limit)
        return self.json(cursor_list([self.file_object(f) for f in page], has_more))

    # -- the store -------------------------------------------------------------------------
    def live_file(self, file_id: str) -> SandboxFile | None:
        """A file of this namespace that has not expired, or None (expired files are gone)."""
        f = self.engine.get_file(self.ns, file_id)
        if f is None or (f.expires_at is not None and f.expires_at <= self.now()):
            return None
        return f

    # -- handlers --------------------------------------------------------------------------
    async def create_file(self, request: Request) -> Response:
        try:
            form = await request.form()
        except Exception as exc:  # a malformed multipart body
            return self.error(400, f"Could not parse multipart form: {exc}")
        try:
            purpose = form.get("purpose")
            if not purpose and self.default_purpose is not None:
                purpose = self.default_purpose
            upload = form.get("file")
            if not isinstance(purpose, str) or purpose not in self.upload_purposes:
                return self.bad_purpose(purpose)
            if not isinstance(upload, UploadFile):
                return self.missing_file()
            expires = self.upload_expiry(form, purpose)
            if isinstance(expires, Response):
                return expires
            data = await upload.read()
            filename = upload.filename or self.default_filename
            refused = self.check_upload(purpose, filename, data)
            if refused is not None:
                return refused
        finally:
            await form.close()  # spooled temp files
        f = self.engine.add_file(
            self.ns, data, filename=filename, purpose=purpose, expires_after=expires
        )
        return self.upload_response(f)

    async def list_files(self, request: Request) -> Response:
        purpose = request.query_params.get("purpose")
        with self.engine.lock:
            files = [
                f
                for f in list(self.engine.files.values())
                if f.namespace == self.ns and self.live_file(f.id) and purpose in (None, f.purpose)
            ]
        return self.files_page(request, files)

    async def retrieve_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        f = self.live_file(file_id)
        return self.json(self.retrieved_file_object(f)) if f else self.not_found("File", file_id)

    async def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self.engine.lock:
            f = self.live_file(file_id)
            if f is None:
                return self.not_found("File", file_id)
            del self.engine.files[f.id]
        return self.json({"id": f.id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        f = self.live_file(file_id)
        if f is None:
            return self.not_found("File", file_id)
        offset = 0
        if self.content_offset:
            try:
                offset = int(request.query_params.get("offset", "0"))
            except ValueError:
                offset = -1
            if offset < 0:
                return self.error(
                    400, "Invalid 'offset': expected a non-negative integer.", param="offset"
                )
        # an injected truncation cuts this download short mid-line; fetching again may succeed
        data = self.deliver(f.data, f.fault_key)
        return Response(
            data[offset:],
            media_type="application/octet-stream",
            headers={self.request_id_header: self.request_id()},
        )

    def file_routes(self) -> list[KindRoute]:
        """The five Files routes under :attr:`files_path`."""
        base = self.files_path
        return [
            self.route(base, self.create_file, ["POST"], RouteKind.UPLOAD),
            self.route(base, self.list_files, ["GET"], RouteKind.LIST),
            self.route(base + "/{file_id}", self.retrieve_file, ["GET"], RouteKind.POLL),
            self.route(base + "/{file_id}", self.delete_file, ["DELETE"], RouteKind.DELETE),
            self.route(base + "/{file_id}/content", self.file_content, ["GET"], RouteKind.DOWNLOAD),
        ]
