"""Another system's API as a target: POST new objects, update and delete them, one call per object.

`targetId` names the Source whose location, configuration (headers, timeouts), credentials, rate-limit
state and request budget the calls use; they go through the one HTTP layer (syncapp.http), so rate
limits, retries, the network policy and the answer limits are a source's. `targetConfig` keys, with
OpenConnector's names:

- `endpoint`: where a new object is POSTed (appended to the location; a template with `originId`,
  `targetId` and the mapped `object`);
- `resultsPosition`: where the written object is in the target's answer (a dot path, e.g. `result`; unset,
  `_root` or `_object`: the whole answer); `idPosition` is read there, and the contract log keeps it as
  the answer. OpenConnector hands its targetConfig to Guzzle, which has no such option: set it where
  the API wraps what it created (xxllnc's `/case/create` answers `{"result": {"reference": ...}}`);
- `idPosition`: dot path of the new id in the written object (default `id`; else the last segment of a
  `Location` header); `idInRequestBody`: the id is the value at this path of the sent object instead;
- `headers`, `query`, `timeout`, `connectTimeout`, `verify`: OpenConnector's Guzzle options, on every
  call to the target, over those of the target source's `configuration` (later wins per key, as for a
  sourceConfig); a secret header or parameter is refused: it goes in the target source's credentials;
- `updateEndpoint` (default `endpoint` + `/{{ targetId }}`), `updateMethod` (`PUT`, `PATCH` or `POST`);
- `deleteEndpoint` (default as update), `deleteMethod` (default `DELETE`);
- `recreateOnNotFound`: a 404 on update creates the object again instead of failing it.

A target writes no transaction of ours: each object's outcome is recorded before the next call
(`transactional = False`, syncapp.runs.chunks), so a redelivered chunk never sends an object twice.
"""
from __future__ import annotations

from typing import Any

from syncapp.authentication import (
    AuthenticationFailed,
    CredentialsError,
    authenticator_for,
    credential_problems,
    credentials_refusal,
)
from syncapp.declared import DotPath, Template
from syncapp.dotpath import MISSING, get_path
from syncapp.egress import same_origin
from syncapp.errors import InvalidObject, SourceError, TargetError
from syncapp.http import HttpError, RateLimited, TransientHttpError, http_request
from syncapp.mapping import MappingError, apply_mapping, validate_mapping_config
from syncapp.mappings import mapping_spec, resolve_mapping
from syncapp.models import Mapping, Synchronization
from syncapp.outbound.calls import CallOptions, call_options_problems, call_settings, endpoint_url
from syncapp.outbound.masking import snippet
from syncapp.targets.base import GUARDED, Outcome, Version, Write, WriterKind, writer_type

UPDATE_METHODS = ("PUT", "PATCH", "POST")
DELETE_METHODS = ("DELETE", "POST", "PUT", "PATCH")
TEMPLATE_KEYS = ("endpoint", "updateEndpoint", "deleteEndpoint")


def _mapping_known(reference: str, known: set[str] | None) -> bool:
    return (known is not None and reference in known) or Mapping.objects.filter(reference=reference).exists()


def target_config_problems(
    config: Any, *, path: str = "targetConfig", known_mappings: set[str] | None = None
) -> list[str]:
    """Return the problems of an api target's configuration, each with its path (`known_mappings`: the
    references of mappings about to be saved with it)."""
    if config in (None, {}):
        return []
    if not isinstance(config, dict):
        return [f"{path}: must be an object"]
    problems = call_options_problems(config, path=path)  # unknown keys are refused by the declaration
    for key in ("endpoint", "idPosition", "idInRequestBody", "updateEndpoint", "deleteEndpoint", "updateMapping",
                "deleteMapping", "resultsPosition"):
        if key in config and not isinstance(config[key], str):
            problems.append(f"{path}.{key}: must be text")
    for key in ("updateMapping", "deleteMapping"):
        reference = config.get(key)
        if isinstance(reference, str) and reference and not _mapping_known(reference, known_mappings):
            problems.append(f"{path}.{key}: no mapping with reference {reference!r}")
    for key, allowed in (("updateMethod", UPDATE_METHODS), ("deleteMethod", DELETE_METHODS)):
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or value.upper() not in allowed):
            problems.append(f"{path}.{key}: must be one of {', '.join(allowed)}, got {value!r}")
    if "recreateOnNotFound" in config and not isinstance(config["recreateOnNotFound"], bool):
        problems.append(f"{path}.recreateOnNotFound: must be true or false")

    for key in TEMPLATE_KEYS:
        value = config.get(key)
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            problems += [f"{path}.{problem.removeprefix('mapping.')}"
                         for problem in validate_mapping_config({"mapping": {key: value}})]
    return problems


class ApiTargetConfig(CallOptions):
    """targetConfig of a synchronization that sends its objects to another system's API (OpenConnector's names);
    its headers, query, timeouts and TLS verification go with every call, over the target source's."""

    endpoint: Template | None = None
    """Where a new object is POSTed, appended to the location; a template with originId, targetId, object."""
    results_position: DotPath | None = None
    """Where the written object is in the answer, e.g. result (default: the whole answer; also _root, _object)."""
    id_position: DotPath | None = None
    """The dot path of the new id in the written object (default id; else the last segment of a Location header)."""
    id_in_request_body: DotPath | None = None
    """The id is the value at this path of the sent object instead."""
    update_endpoint: Template | None = None
    """Where an update goes (default endpoint + /{{ targetId }})."""
    update_method: str | None = None
    """The method of an update: PUT (default), PATCH or POST."""
    update_mapping: str | None = None
    """A mapping, by reference, for the body of updates (default: the mapped object)."""
    delete_endpoint: Template | None = None
    """Where a deletion goes (default as the update)."""
    delete_method: str | None = None
    """The method of a deletion: DELETE (default), POST, PUT or PATCH."""
    delete_mapping: str | None = None
    """A mapping, by reference, for the body of deletions (default: none)."""
    recreate_on_not_found: bool | None = None
    """A 404 on update creates the object again instead of failing it."""


@writer_type("api", label="API")
class ApiWriter(WriterKind):
    """Objects sent to another system's API, one call each."""

    declaration = ApiTargetConfig
    # Remote writes cannot be rolled back with our transaction: the chunk records each before the next.
    transactional = False

    @staticmethod
    def config_problems(target_config: dict[str, Any], *, path: str, known_mappings: set[str]) -> list[str]:
        return target_config_problems(target_config, path=path, known_mappings=known_mappings)

    def __init__(self, synchronization: Synchronization):
        self.reference = synchronization.reference
        self.source = synchronization.target_source
        self.config: dict[str, Any] = synchronization.target_config or {}
        self.call = call_settings(source=self.source, source_config=self.config, where="targetConfig")
        self.results_position = self.config.get("resultsPosition") or ""
        # One authenticator for the writer's calls: an OAuth2 token is read (or fetched) once, not per call.
        self.auth = authenticator_for(source=self.source, timeout=self.call.timeout, verify=self.call.verify)
        self.endpoint = self.config.get("endpoint") or ""
        self.update_endpoint = self.config.get("updateEndpoint") or f"{self.endpoint.rstrip('/')}/{{{{ targetId }}}}"
        self.delete_endpoint = self.config.get("deleteEndpoint") or self.update_endpoint
        self.update_method = str(self.config.get("updateMethod") or "PUT").upper()
        self.delete_method = str(self.config.get("deleteMethod") or "DELETE").upper()
        # The bodies of updates and deletions, when they are not the mapped object (and no body).
        self.update_mapping = _spec(self.config.get("updateMapping"))
        self.delete_mapping = _spec(self.config.get("deleteMapping"))

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        if synchronization.target_source is None:
            return f"synchronization {synchronization.reference!r} has no api target (targetId names a source)"
        problems = target_config_problems(synchronization.target_config)
        problems += credential_problems(synchronization.target_source.credentials or {},
                                        path=f"the credentials of target {synchronization.target_source.reference!r}")
        refusal = credentials_refusal(synchronization.target_source)
        if refusal is not None:
            problems.append(f"the credentials of target {synchronization.target_source.reference!r}: {refusal}")
        return "; ".join(problems) if problems else None

    def validate(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise InvalidObject(f"an api target takes a JSON object, not {type(data).__name__}")

    def existing(self, target_ids: list[str]) -> set[str]:
        # A remote API is not asked object by object: what it had, it is taken to have still.
        return {target_id for target_id in target_ids if target_id}

    def write(self, writes: list[Write], *, bulk: str = GUARDED, version: Version | None = None) -> list[Outcome]:
        # One call per object, outside our transactions: there is no bulk statement, nor version to check.
        return [self._write_one(write) for write in writes]

    def delete(self, target_ids: list[str], *, push_origin: tuple[int, ...] = ()) -> None:
        # push_origin: an API target starts no pushes, so it has nothing to pass it on to.
        for target_id in target_ids:
            variables = {"targetId": target_id, "object": None, "originId": None}
            try:
                body = _mapped(self.delete_mapping, {"targetId": target_id}) if self.delete_mapping else None
                response = self._send(self.delete_method, self.delete_endpoint, variables=variables, body=body)
            except (HttpError, RateLimited, SourceError, CredentialsError, AuthenticationFailed, MappingError) as error:
                raise TargetError(f"deleting {target_id}: {error}") from None
            if response.status_code >= 400 and response.status_code != 404:  # gone already is deleted
                raise TargetError(self._refusal(response, f"deleting {target_id}"))

    # -- one object ---------------------------------------------------------------------------

    def _write_one(self, write: Write) -> Outcome:
        variables = {"originId": write.origin_id, "targetId": write.target_id, "object": write.data}
        try:
            if write.target_id:
                body = _mapped(self.update_mapping, write.data) if self.update_mapping else write.data
                response = self._send(self.update_method, self.update_endpoint, variables=variables, body=body)
                if response.status_code == 404 and self.config.get("recreateOnNotFound"):
                    return self._create(write, {**variables, "targetId": None})
                if response.status_code < 300:
                    body, written = self._answer(response)
                    return Outcome(Outcome.UPDATED, target_id=write.target_id,
                                   response=body if written is MISSING else written)
                return Outcome(Outcome.FAILED, error=self._refusal(response, "update"))
            return self._create(write, variables)
        except RateLimited as error:
            return Outcome(Outcome.RETRY, error=str(error), wait_seconds=error.wait_seconds)
        except TransientHttpError as error:
            return Outcome(Outcome.RETRY, error=str(error))
        except (HttpError, SourceError, CredentialsError, AuthenticationFailed) as error:
            return Outcome(Outcome.FAILED, error=str(error))
        except MappingError as error:
            return Outcome(Outcome.INVALID, error=f"updateMapping: {error}")

    def _create(self, write: Write, variables: dict[str, Any]) -> Outcome:
        # A target that honours idempotency keys creates nothing twice even for a call whose answer
        # was lost with its worker (the one case the chunk's progress cannot cover).
        key = f"{self.reference}/{write.key}" if write.key else None
        response = self._send("POST", self.endpoint, variables=variables, body=write.data,
                              extra_headers={"Idempotency-Key": key} if key else None)
        if response.status_code >= 300:
            return Outcome(Outcome.FAILED, error=self._refusal(response, "create"))
        body, written = self._answer(response)
        target_id = self._new_id(write=write, body=written, location=response.headers.get("Location"))
        if target_id is None:
            where = repr(self.config.get("idInRequestBody") or self.config.get("idPosition") or "id")
            if self.results_position and not self.config.get("idInRequestBody"):
                where += (f" of the object at resultsPosition {self.results_position!r}" if written is not MISSING
                          else f" (nothing at resultsPosition {self.results_position!r})")
            return Outcome(Outcome.FAILED, error=f"created, but the answer holds no id at {where} and no Location",
                           response=body)
        return Outcome(Outcome.CREATED, target_id=target_id, response=body if written is MISSING else written)

    def _new_id(self, *, write: Write, body: Any, location: str | None) -> str | None:
        in_request = self.config.get("idInRequestBody")
        if in_request:
            found = get_path(write.data, in_request)
            return None if found is MISSING or found in (None, "") else str(found)
        found = get_path(body, self.config.get("idPosition") or "id") if isinstance(body, dict | list) else MISSING
        if found is not MISSING and found not in (None, "") and not isinstance(found, dict | list):
            return str(found)
        if location:
            segment = location.rstrip("/").rsplit("/", 1)[-1]
            return segment or None
        return None

    def _send(
        self, method: str, endpoint: str, *, variables: dict[str, Any], body: Any = None,
        extra_headers: dict[str, str] | None = None,
    ):
        url = endpoint_url(source=self.source, source_config={"endpoint": endpoint}, variables=variables)
        auth = self.auth
        headers = {"Accept": "application/json", **self.call.headers, **(extra_headers or {})}
        params = dict(self.call.query)
        own_origin = same_origin(url, self.source.location)
        if own_origin:
            auth.apply(headers=headers, params=params)

        def send():
            return http_request(
                method=method, url=url, params=params, headers=headers, json=body, timeout=self.call.timeout,
                verify=self.call.verify, source=self.source, secret_params=auth.credentials.secret_params,
                secret_headers=auth.credentials.secret_headers, secrets=auth.secrets,
            )

        response = send()
        if response.status_code == 401 and auth.can_refresh and own_origin:
            # The cached token may have been revoked or expired early: fetch a new one and send again, once.
            auth.refresh()
            auth.apply(headers=headers, params=params)
            response = send()
        return response

    def _refusal(self, response, what: str) -> str:
        text = snippet(response.text, self.auth.secrets)
        return f"{what}: {response.request.method} answered {response.status_code}: {text!r}"

    def _answer(self, response) -> tuple[Any, Any]:
        """Return the answer's body and the written object in it: at resultsPosition (MISSING when nothing is
        there), else the whole body."""
        body = self._body(response)
        if self.results_position in ("", "_root", "_object"):
            return body, body
        return body, get_path(body, self.results_position) if isinstance(body, dict | list) else MISSING

    @staticmethod
    def _body(response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return snippet(response.text, ())


def _spec(reference: Any):
    """Return the mapping a targetConfig key names, ready to apply; None when it names none."""
    if not reference:
        return None

    mapping = Mapping.objects.filter(reference=reference).first()
    if mapping is None:
        raise TargetError(f"targetConfig: no mapping with reference {reference!r}")
    return mapping_spec(mapping)


def _mapped(spec: Any, data: Any) -> Any:
    return apply_mapping(spec=spec, data=data if isinstance(data, dict) else {"value": data},
                         resolve_mapping=resolve_mapping)
