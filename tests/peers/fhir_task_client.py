#!/usr/bin/env python3
"""A provider's FHIR client for the gateway's Task endpoint, with tools that are not ours: the
Task update is built with fhir.resources 6.4.0 (R4 models), sent with Python's http.client over
TLS, and every answer is parsed with fhir.resources: a Task on success, an OperationOutcome on
an error (a parse failure exits 1, failing the test).

    fhir_task_client.py put '{"url", "ca", "token", "id", "status", "reason"?, "reason_text"?,
                              "business"?, "key"?, "task_id"?}'
        builds a Task (status, intent order, statusReason and businessStatus codes, the
        referral's id as identifier when "key" is given, "task_id" as Task.id) and PUTs it to
        /fhir/Task/{id} as application/fhir+json
    fhir_task_client.py patch '{"url", "ca", "token", "id", "ops", "if_match"?}'
        PATCHes /fhir/Task/{id} with the JSON Patch "ops" (application/json-patch+json)
    fhir_task_client.py get '{"url", "ca", "token", "id"}'
    fhir_task_client.py raw '{"url", "ca", "token"?, "method", "path", "content_type", "body"}'
        any request, to see the errors
    fhir_task_client.py declared '{"url", "ca", "token", "id", "length"}'
        a PUT head announcing a body of `length` bytes, and no body: the answer the listener
        gives before reading it

Prints {"status": HTTP status, "content_type", "task"? | "outcome"?} with the parsed resource
re-serialized by fhir.resources.
"""
import http.client
import json
import ssl
import sys
import urllib.parse

from fhir.resources.codeableconcept import CodeableConcept
from fhir.resources.coding import Coding
from fhir.resources.identifier import Identifier
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.task import Task

KEY_SYSTEM = "urn:pnp-gateway:idempotency-key"


def connection(args):
    u = urllib.parse.urlparse(args["url"])
    ctx = ssl.create_default_context(cafile=args["ca"])
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)


def answer(r):
    raw = r.read().decode("utf-8")
    out = {"status": r.status, "content_type": r.getheader("Content-Type")}
    if 200 <= r.status < 300:
        out["task"] = json.loads(Task.parse_raw(raw).json())
    else:
        out["outcome"] = json.loads(OperationOutcome.parse_raw(raw).json())
    return out


def send(args, method, path, content_type, body):
    conn = connection(args)
    headers = {"Content-Type": content_type, "Accept": "application/fhir+json"}
    if args.get("token"):
        headers["Authorization"] = "Bearer " + args["token"]
    if args.get("if_match"):
        headers["If-Match"] = args["if_match"]
    conn.request(method, path, body=body.encode() if body is not None else None, headers=headers)
    return answer(conn.getresponse())


def task_path(args):
    return "/fhir/Task/" + urllib.parse.quote(args["id"], safe="")


def put(args):
    fields = {"status": args["status"], "intent": "order"}
    if args.get("task_id"):
        fields["id"] = args["task_id"]
    if args.get("key"):
        fields["identifier"] = [Identifier(system=KEY_SYSTEM, value=args["key"])]
    if args.get("reason") or args.get("reason_text"):
        reason = {}
        if args.get("reason"):
            reason["coding"] = [Coding(system="http://hl7.org/fhir/CodeSystem/task-status-reason", code=args["reason"])]
        if args.get("reason_text"):
            reason["text"] = args["reason_text"]
        fields["statusReason"] = CodeableConcept(**reason)
    if args.get("business"):
        fields["businessStatus"] = CodeableConcept(coding=[Coding(code=args["business"])])
    task = Task(**fields)
    return send(args, "PUT", task_path(args), "application/fhir+json", task.json())


def patch(args):
    return send(args, "PATCH", task_path(args), "application/json-patch+json", json.dumps(args["ops"]))


def get(args):
    return send(args, "GET", task_path(args), "application/fhir+json", None)


def raw(args):
    return send(args, args["method"], args["path"], args["content_type"], args.get("body"))


def declared(args):
    conn = connection(args)
    conn.putrequest("PUT", task_path(args))
    conn.putheader("Authorization", "Bearer " + args["token"])
    conn.putheader("Content-Type", "application/fhir+json")
    conn.putheader("Content-Length", str(args["length"]))
    conn.endheaders()
    return answer(conn.getresponse())


def main():
    cmd, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"put": put, "patch": patch, "get": get, "raw": raw, "declared": declared}[cmd](args)), flush=True)


if __name__ == "__main__":
    main()
