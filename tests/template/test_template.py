"""template.yaml against the code it deploys: tables, handlers, settings, failure paths, IAM.

Plain pytest, no SAM CLI: the template is read with a YAML loader that turns the
CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) into their long forms, and the
handlers are parsed with ``ast`` (importing them would run their cold-start code).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pynamodb.attributes import TTLAttribute

from qlumeter.pipeline import settings as settings_module
from qlumeter.pipeline.dynamo import RECEIPTS, TABLES
from qlumeter.pipeline.ingest import INVENTORY_PREFIX, QUARANTINE_PREFIX, REJECTS_PREFIX
from qlumeter.pipeline.settings import TableSettings
from qlumeter.pipeline.usage import CHECKPOINT_PREFIX, MESSAGES_PREFIX
from qlumeter.publishing import INGEST_FAILED, USAGE_EVENTS
from qlumeter_cli.stack import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FUNCTION = "AWS::Serverless::Function"
FUNCTIONS = [
    "IngestFunction",
    "DispatchFunction",
    "MeterFunction",
    "AdminFunction",
    "LedgerFunction",
]
POWERTOOLS_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
#: Event source types that invoke a function asynchronously.
ASYNC_EVENT_TYPES = {
    "S3",
    "SNS",
    "Schedule",
    "ScheduleV2",
    "EventBridgeRule",
    "CloudWatchEvent",
    "CloudWatchLogs",
    "IoTRule",
    "Cognito",
}
#: IAM statements allowed a "*" action or resource: (resource, Sid) -> why.
WILDCARD_EXCEPTIONS = {
    ("DataKey", "EnableIamPolicies"): "a key policy's Resource '*' is the key itself",
    ("DataKey", "AllowS3NotificationsToEncryptedQueue"): "key policy: '*' is the key itself",
    ("DataKey", "AllowCloudWatchAlarmsToEncryptedTopic"): "key policy: '*' is the key itself",
    ("DataKey", "AllowTopicDeliveriesToEncryptedQueue"): "key policy: '*' is the key itself",
    ("DataKey", "AllowLogGroupEncryption"): "key policy: '*' is the key itself",
}


# ------------------------------------------------------------------ loading


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = load_template(TEMPLATE)
    assert isinstance(loaded, dict)
    return loaded


def resources(template: dict[str, Any], kind: str | None = None) -> dict[str, dict[str, Any]]:
    found = template["Resources"]
    return {k: v for k, v in found.items() if kind is None or v["Type"] == kind}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources(template, FUNCTION)


def global_function(template: dict[str, Any]) -> dict[str, Any]:
    globals_: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    return globals_


def prop(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function property, falling back to Globals.Function."""
    return function["Properties"].get(name, global_function(template).get(name))


def environment(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    """The function's variables merged over the Globals' (as SAM merges them)."""
    merged = dict(global_function(template).get("Environment", {}).get("Variables", {}))
    merged.update(function["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def ref_target(value: Any) -> str | None:
    """The logical id a !Ref or !GetAtt points at, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def handler_source(template: dict[str, Any], function: dict[str, Any]) -> tuple[Path, str]:
    code_uri = function["Properties"]["CodeUri"]
    module, _, name = prop(template, function, "Handler").rpartition(".")
    return ROOT / code_uri / (module.replace(".", "/") + ".py"), name


def settings_class(source: Path) -> type[BaseModel]:
    """The settings model a handler builds at cold start (``XSettings.from_env()``)."""
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "from_env"
            and isinstance(node.func.value, ast.Name)
        ):
            cls = getattr(settings_module, node.func.value.id)
            assert issubclass(cls, BaseModel)
            return cls
    raise AssertionError(f"{source} builds no settings model with from_env()")


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy statement written in the template, with the resource holding it."""

    def documents(value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, dict):
            if "Statement" in value:
                yield value
            for inner in value.values():
                yield from documents(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from documents(inner)

    for name, resource in resources(template).items():
        for document in documents(resource.get("Properties", {})):
            listed = document["Statement"]
            for statement in listed if isinstance(listed, list) else [listed]:
                yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def table_resource(template: dict[str, Any], variable: str) -> dict[str, Any]:
    """The table resource an environment variable names (Globals or any function)."""
    for function in functions(template).values():
        target = ref_target(environment(template, function).get(variable))
        if target:
            table = resources(template)[target]
            assert table["Type"] == "AWS::DynamoDB::Table", (variable, target)
            return table
    raise AssertionError(f"no function sets {variable} to a table")


def table_variables() -> dict[str, str]:
    """Logical table name -> the environment variable naming it (from TableSettings)."""
    fields = {name: name for name in TableSettings.model_fields}
    return TableSettings.model_validate(fields).tables()


# ------------------------------------------------------------------ tables


def test_every_model_has_a_table_variable() -> None:
    assert set(table_variables()) == set(TABLES)


@pytest.mark.parametrize("logical", sorted(TABLES))
def test_table_key_schema_matches_the_model(template: dict[str, Any], logical: str) -> None:
    model = TABLES[logical]
    table = table_resource(template, table_variables()[logical])["Properties"]
    expected_keys = {model._hash_keyname: "HASH"}
    if model._range_keyname:
        expected_keys[model._range_keyname] = "RANGE"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == expected_keys
    attributes = model.get_attributes()
    expected_types = {name: attributes[name].attr_type for name in expected_keys}
    defined = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert defined == expected_types  # only key attributes may be defined (no indexes)


@pytest.mark.parametrize("logical", sorted(TABLES))
def test_table_ttl_matches_the_model(template: dict[str, Any], logical: str) -> None:
    model = TABLES[logical]
    ttl = [n for n, a in model.get_attributes().items() if isinstance(a, TTLAttribute)]
    table = table_resource(template, table_variables()[logical])["Properties"]
    spec = table.get("TimeToLiveSpecification")
    if ttl:
        assert spec == {"AttributeName": ttl[0], "Enabled": True}
    else:
        assert spec is None or not spec.get("Enabled")


def test_idempotency_table_fits_powertools(template: dict[str, Any]) -> None:
    # DynamoDBPersistenceLayer's defaults: key_attr="id", expiry_attr="expiration".
    table = table_resource(template, "IDEMPOTENCY_TABLE")["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_tables_are_on_demand_recoverable_and_encrypted(template: dict[str, Any]) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == len(TABLES) + 1  # + idempotency
    for name, table in tables.items():
        p = table["Properties"]
        assert p["BillingMode"] == "PAY_PER_REQUEST", name
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert p["SSESpecification"]["SSEEnabled"] is True, name


# ------------------------------------------------------------------ functions


def test_four_functions_from_the_functions_folder(template: dict[str, Any]) -> None:
    folders = {p.parent.name for p in (ROOT / "functions").glob("*/app.py")}
    deployed = {Path(f["Properties"]["CodeUri"]).name for f in functions(template).values()}
    assert deployed == folders == {"ingest", "dispatch", "meter", "admin", "ledger"}
    assert sorted(functions(template)) == sorted(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_handler_exists(template: dict[str, Any], name: str) -> None:
    function = functions(template)[name]
    source, handler = handler_source(template, function)
    assert source.is_file(), source
    tree = ast.parse(source.read_text())
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    } | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert handler in defined, f"{source} defines no {handler}"


def test_functions_are_explicitly_sized(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        memory, timeout = function["Properties"]["MemorySize"], function["Properties"]["Timeout"]
        assert 128 <= memory <= 10240 and 1 <= timeout <= 900, name
        assert prop(template, function, "Runtime") == "python3.13", name
        assert set(prop(template, function, "Architectures")) <= {"arm64", "x86_64"}, name
    ingest = functions(template)["IngestFunction"]["Properties"]
    assert ingest["MemorySize"] >= 1769  # a full vCPU for streaming ~1M rows
    assert ingest["Timeout"] == 900


def test_sdk_retry_mode(template: dict[str, Any]) -> None:
    """Standard retries for every function (Globals); adaptive for ingest, whose many
    concurrent invocations meet throttling first."""
    modes = {
        name: environment(template, function).get("AWS_RETRY_MODE")
        for name, function in functions(template).items()
    }
    assert global_function(template)["Environment"]["Variables"]["AWS_RETRY_MODE"] == "standard"
    assert modes == {name: "standard" for name in FUNCTIONS} | {"IngestFunction": "adaptive"}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_environment_sets_every_setting(template: dict[str, Any], name: str) -> None:
    function = functions(template)[name]
    source, _ = handler_source(template, function)
    model = settings_class(source)
    required = {n for n, field in model.model_fields.items() if field.is_required()}
    env = environment(template, function)
    assert required, model
    assert not required - set(env), f"{name} lacks {sorted(required - set(env))}"
    assert not POWERTOOLS_VARIABLES - set(env), name
    for variable in required:
        assert env[variable] not in ("", None), (name, variable)


def test_functions_use_the_engine_layer(template: dict[str, Any]) -> None:
    layers = resources(template, "AWS::Serverless::LayerVersion")
    assert list(layers) == ["EngineLayer"]
    layer = layers["EngineLayer"]
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/engine"
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert (ROOT / "layers/engine/qlumeter/__init__.py").is_file()
    for name, function in functions(template).items():
        assert [ref_target(x) for x in prop(template, function, "Layers")] == ["EngineLayer"], name


def test_layer_requirements_pin_pyproject_versions() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    pinned = dict(re.findall(r'"([A-Za-z0-9_.\-\[\]]+)==([^"]+)"', pyproject))
    lines = (ROOT / "layers/engine/requirements.txt").read_text().splitlines()
    requirements = dict(
        line.split("#")[0].strip().split("==") for line in lines if line.split("#")[0].strip()
    )
    for package in ("pydantic", "PyYAML", "pynamodb", "aws-lambda-powertools[tracer]"):
        assert requirements.get(package) == pinned[package], package
    for package, version in requirements.items():
        if package in pinned:
            assert version == pinned[package], package


# ------------------------------------------------------------------ failure paths


def async_functions(template: dict[str, Any]) -> set[str]:
    """Functions something invokes asynchronously: async event sources, schedules, and
    other functions that get their name in the environment (LambdaTrigger: Event)."""
    names = set(functions(template))
    found = set()
    for name, function in functions(template).items():
        events = function["Properties"].get("Events", {})
        if any(e["Type"] in ASYNC_EVENT_TYPES for e in events.values()):
            found.add(name)
        for value in environment(template, function).values():
            if ref_target(value) in names:
                found.add(str(ref_target(value)))
    for schedule in resources(template, "AWS::Scheduler::Schedule").values():
        target = ref_target(schedule["Properties"]["Target"]["Arn"])
        if target in names:
            found.add(target)
    return found


def test_the_schedule_invokes_the_dispatch_only(template: dict[str, Any]) -> None:
    """The meter runs from its queue (one tenant per invocation), never asynchronously."""
    assert async_functions(template) == {"DispatchFunction"}


def test_async_functions_have_a_failure_destination(template: dict[str, Any]) -> None:
    for name in async_functions(template):
        p = functions(template)[name]["Properties"]
        on_failure = p.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        assert p.get("DeadLetterQueue") or on_failure, f"{name} has no DLQ or destination"
        if on_failure:
            target = ref_target(on_failure["Destination"])
            assert resources(template)[str(target)]["Type"] in (
                "AWS::SQS::Queue",
                "AWS::SNS::Topic",
            )


def test_schedule_input_retry_and_dead_letter(template: dict[str, Any]) -> None:
    (schedule,) = resources(template, "AWS::Scheduler::Schedule").values()
    p = schedule["Properties"]
    assert ref_target(p["ScheduleExpression"]) == "ScheduleExpression"  # a parameter
    target = p["Target"]
    assert ref_target(target["Arn"]) == "DispatchFunction"
    assert yaml.safe_load(target["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert resources(template)[str(ref_target(target["DeadLetterConfig"]["Arn"]))]


def sqs_events(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, function in functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                yield name, event["Properties"]


def test_sqs_event_sources_report_batch_item_failures(template: dict[str, Any]) -> None:
    found = list(sqs_events(template))
    assert sorted(name for name, _ in found) == [
        "IngestFunction",
        "LedgerFunction",
        "MeterFunction",
    ]
    for _, event in found:
        assert "ReportBatchItemFailures" in event["FunctionResponseTypes"]


def test_event_source_queues_redrive_and_outlast_the_function(template: dict[str, Any]) -> None:
    queues = {}
    for name, event in sqs_events(template):
        queue = resources(template)[str(ref_target(event["Queue"]))]["Properties"]
        timeout = functions(template)[name]["Properties"]["Timeout"]
        if queue.get("FifoQueue"):
            # the meter queue: a tenant's request is never handed out while an invocation
            # may still be at work on it; a failed one comes back within minutes (the
            # lease keeps a second run of a tenant from starting meanwhile)
            assert timeout < queue["VisibilityTimeout"] <= timeout * 2, name
        else:
            assert queue["VisibilityTimeout"] >= timeout * 6  # AWS's advice for event sources
        dlq = ref_target(queue["RedrivePolicy"]["deadLetterTargetArn"])
        assert resources(template)[str(dlq)]["Type"] == "AWS::SQS::Queue"
        assert bool(resources(template)[str(dlq)]["Properties"].get("FifoQueue")) == bool(
            queue.get("FifoQueue")
        )
        queues[name] = (ref_target(event["Queue"]), dlq, queue["RedrivePolicy"]["maxReceiveCount"])
    assert queues == {
        "IngestFunction": ("IngestQueue", "IngestDeadLetterQueue", 5),
        "MeterFunction": ("MeterQueue", "MeterDeadLetterQueue", 3),
        "LedgerFunction": ("LedgerQueue", "LedgerDeadLetterQueue", 5),
    }


def test_the_meter_queue_serialises_each_tenant(template: dict[str, Any]) -> None:
    """FIFO with explicit deduplication ids (the sender's: qlumeter.pipeline.requests), the
    tenant as message group; the worker's concurrency is a parameter."""
    queue = resources(template)["MeterQueue"]["Properties"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is False
    (event,) = functions(template)["MeterFunction"]["Properties"]["Events"].values()
    assert event["Properties"]["BatchSize"] == 1
    assert ref_target(event["Properties"]["ScalingConfig"]["MaximumConcurrency"]) == (
        "MeterConcurrency"
    )
    parameter = template["Parameters"]["MeterConcurrency"]
    assert 2 <= parameter["Default"] <= parameter["MaxValue"] <= 1000


def test_a_failed_receipt_is_retried_before_the_meter_stops_waiting(
    template: dict[str, Any],
) -> None:
    """A receipt the ledger failed to write comes back after the queue's visibility
    timeout: that must leave room for another attempt within the meter's wait for it."""
    from qlumeter.pipeline.usage import CONFIRM_AFTER

    queue = resources(template)["LedgerQueue"]["Properties"]
    assert 2 * queue["VisibilityTimeout"] <= CONFIRM_AFTER.total_seconds()


def test_inventory_notifications_filter_the_inventory_prefix(template: dict[str, Any]) -> None:
    bucket = resources(template)["InventoryBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    (config,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    rules = config["Filter"]["S3Key"]["Rules"]
    assert rules == [{"Name": "prefix", "Value": INVENTORY_PREFIX}]
    ingest = [ref_target(e["Queue"]) for n, e in sqs_events(template) if n == "IngestFunction"]
    assert ingest == [ref_target(config["Queue"])]


# ------------------------------------------------------------------ security


def test_no_wildcard_action_or_resource(template: dict[str, Any]) -> None:
    offending = []
    used = set()
    for name, statement in statements(template):
        if statement.get("Effect") == "Deny":
            continue
        actions = as_list(statement.get("Action", []))
        targets = as_list(statement.get("Resource", []))
        if "*" in actions or "*" in targets:
            key = (name, statement.get("Sid"))
            if key in WILDCARD_EXCEPTIONS:
                used.add(key)
            else:
                offending.append(key)
    assert not offending, f"'*' action or resource in {offending}"
    assert used == set(WILDCARD_EXCEPTIONS), "stale exceptions"


#: What a function needs on a resource it finds in its environment: policy templates.
ACCESS_FOR = {
    "AWS::SQS::Queue": {"SQSSendMessagePolicy"},
    "AWS::Serverless::Function": {"LambdaInvokePolicy"},
    "AWS::SNS::Topic": {"SNSPublishMessagePolicy"},
    "AWS::DynamoDB::Table": {"DynamoDBReadPolicy", "DynamoDBWritePolicy", "DynamoDBCrudPolicy"},
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_may_use_what_its_environment_names(template: dict[str, Any], name: str) -> None:
    function = functions(template)[name]
    granted: dict[str, set[str]] = {}  # logical id -> policy templates naming it
    inline = []  # resources of inline statements, as text
    for policy in function["Properties"]["Policies"]:
        if "Statement" in policy:
            inline += [str(s["Resource"]) for s in policy["Statement"]]
            continue
        for template_name, arguments in policy.items():
            for value in arguments.values():
                granted.setdefault(str(ref_target(value)), set()).add(template_name)
    # The function's own variables; the Globals' name all four tables for bind(), which
    # every function calls, while each function is granted only the tables it uses.
    for variable, value in function["Properties"]["Environment"]["Variables"].items():
        target = ref_target(value)
        if target not in resources(template):
            continue  # a literal or a parameter
        kind = resources(template)[target]["Type"]
        if kind == "AWS::S3::Bucket":
            assert any(f"${{{target}.Arn}}/" in r for r in inline), (name, variable)
        else:
            assert granted.get(target, set()) & ACCESS_FOR[kind], (name, variable, target)


def test_function_s3_access_is_scoped_to_the_code_prefixes(template: dict[str, Any]) -> None:
    def s3_resources(function: str) -> list[str]:
        out = []
        for policy in functions(template)[function]["Properties"]["Policies"]:
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                if any(str(a).startswith("s3:") for a in as_list(statement["Action"])):
                    out += [r["Fn::Sub"] for r in as_list(statement["Resource"])]
        return out

    assert sorted(s3_resources("IngestFunction")) == sorted(
        f"${{InventoryBucket.Arn}}/{prefix}*"
        for prefix in (INVENTORY_PREFIX, REJECTS_PREFIX, QUARANTINE_PREFIX)
    )
    assert s3_resources("MeterFunction") == [
        f"${{StateBucket.Arn}}/{prefix}*" for prefix in (CHECKPOINT_PREFIX, MESSAGES_PREFIX)
    ]
    assert s3_resources("AdminFunction") == []
    assert s3_resources("LedgerFunction") == []


def test_buckets_are_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    buckets = resources(template, "AWS::S3::Bucket")
    policies = {
        ref_target(p["Properties"]["Bucket"]): p["Properties"]["PolicyDocument"]
        for p in resources(template, "AWS::S3::BucketPolicy").values()
    }
    for name, bucket in buckets.items():
        p = bucket["Properties"]
        assert all(p["PublicAccessBlockConfiguration"].values()), name
        assert len(p["PublicAccessBlockConfiguration"]) == 4, name
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        denies = [
            s
            for s in policies[name]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{name} accepts plain HTTP"


def test_queues_and_topic_are_encrypted(template: dict[str, Any]) -> None:
    for kind in ("AWS::SQS::Queue", "AWS::SNS::Topic"):
        for name, resource in resources(template, kind).items():
            assert resource["Properties"].get("KmsMasterKeyId"), name
    (topic_policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    assert [ref_target(t) for t in topic_policy["Properties"]["Topics"]] == ["EventsTopic"]


def test_every_queue_is_tls_only(template: dict[str, Any]) -> None:
    covered: dict[str, int] = {}
    for name, policy in resources(template, "AWS::SQS::QueuePolicy").items():
        queues = [ref_target(q) for q in policy["Properties"]["Queues"]]
        denied = [
            ref_target(r)
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for r in as_list(s["Resource"])
        ]
        assert sorted(map(str, queues)) == sorted(map(str, denied)), name
        for queue in queues:
            covered[str(queue)] = covered.get(str(queue), 0) + 1
    assert covered == {name: 1 for name in resources(template, "AWS::SQS::Queue")}


def test_no_plaintext_secrets(template: dict[str, Any]) -> None:
    suspicious = re.compile(r"(?i)(secret|password|token|api[_-]?key|private[_-]?key)")
    for name, function in functions(template).items():
        for variable in environment(template, function):
            assert not suspicious.search(variable), (name, variable)
    for name, parameter in template["Parameters"].items():
        if suspicious.search(name):
            assert parameter.get("NoEcho") is True, name


def test_log_groups_have_retention(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    for name, function in functions(template).items():
        group = ref_target(function["Properties"]["LoggingConfig"]["LogGroup"])
        assert group in groups, name
        assert groups[str(group)]["Properties"]["RetentionInDays"], name


def test_alarms_watch_every_dead_letter_queue_and_function(template: dict[str, Any]) -> None:
    watched = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        for dimension in alarm["Properties"]["Dimensions"]:
            watched.add(ref_target(dimension["Value"]))
    dead_letter = {n for n in resources(template, "AWS::SQS::Queue") if "DeadLetter" in n}
    assert dead_letter == {
        "IngestDeadLetterQueue",
        "LedgerDeadLetterQueue",
        "MeterDeadLetterQueue",
        "SchedulerDeadLetterQueue",
    }
    assert dead_letter | set(functions(template)) <= watched


def test_topic_has_the_email_and_ledger_subscriptions(template: dict[str, Any]) -> None:
    subscriptions = resources(template, "AWS::SNS::Subscription")
    assert sorted(s["Properties"]["Protocol"] for s in subscriptions.values()) == ["email", "sqs"]
    for subscription in subscriptions.values():
        assert ref_target(subscription["Properties"]["TopicArn"]) == "EventsTopic"


def test_alert_email_subscription_is_optional(template: dict[str, Any]) -> None:
    (subscription,) = [
        s
        for s in resources(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]
    assert subscription["Condition"] == "HasAlertEmail"
    assert ref_target(subscription["Properties"]["Endpoint"]) == "AlertEmail"
    assert template["Parameters"]["AlertEmail"]["Default"] == ""


def test_ledger_subscription_delivers_the_usage_messages_raw(template: dict[str, Any]) -> None:
    (subscription,) = [
        s
        for s in resources(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "sqs"
    ]
    p = subscription["Properties"]
    assert "Condition" not in subscription
    assert ref_target(p["TopicArn"]) == "EventsTopic"
    (ledger_queue,) = [
        ref_target(e["Queue"]) for n, e in sqs_events(template) if n == "LedgerFunction"
    ]
    assert ref_target(p["Endpoint"]) == ledger_queue == "LedgerQueue"
    assert p["RawMessageDelivery"] is True  # the body is the published JSON (UsageMessage)
    assert p["FilterPolicyScope"] == "MessageAttributes"  # SnsPublisher's event_type attribute
    assert p["FilterPolicy"] == {"event_type": list(USAGE_EVENTS)}  # what the ledger parses
    assert INGEST_FAILED not in USAGE_EVENTS
    assert subscription["DependsOn"] == "LedgerQueuePolicy"


def test_only_the_topic_may_send_to_the_ledger_queue(template: dict[str, Any]) -> None:
    policy = resources(template)["LedgerQueuePolicy"]["Properties"]
    assert [ref_target(q) for q in policy["Queues"]] == ["LedgerQueue"]
    (allow,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert ref_target(allow["Resource"]) == "LedgerQueue"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "EventsTopic"}}}
    # SNS encrypts what it delivers into the KMS-encrypted queue with the stack's key.
    key_policy = resources(template)["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    (sns,) = [s for s in key_policy if s.get("Principal") == {"Service": "sns.amazonaws.com"}]
    assert sorted(as_list(sns["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    topic = resources(template)["EventsTopic"]["Properties"]["TopicName"]["Fn::Sub"]
    source = sns["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source.endswith(f":{topic}")  # the stack's topic, by name
    assert sns["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ref_target(resources(template)["LedgerQueue"]["Properties"]["KmsMasterKeyId"]) == (
        "DataKey"
    )


def test_ledger_may_only_put_receipts(template: dict[str, Any]) -> None:
    """PutItem on the usage table, of items whose key is a receipt's (``<tenant>#SENT``,
    as ``DynamoStore.put_receipt`` writes them), and decrypt with the stack's key."""
    (policy,) = functions(template)["LedgerFunction"]["Properties"]["Policies"]
    receipts, key = policy["Statement"]
    assert receipts["Action"] == "dynamodb:PutItem"
    assert ref_target(receipts["Resource"]) == "UsageTable"
    condition = receipts["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert condition == ["*#SENT"]
    assert fnmatch.fnmatchcase(f"acme#{RECEIPTS}", condition[0])
    assert key["Action"] == ["kms:Decrypt"] and ref_target(key["Resource"]) == "DataKey"


def test_outputs_name_what_an_operator_needs(template: dict[str, Any]) -> None:
    outputs = {ref_target(o["Value"]) for o in template["Outputs"].values()}
    needed = set(resources(template, "AWS::S3::Bucket")) | {"EventsTopic"}
    needed |= set(resources(template, "AWS::DynamoDB::Table")) | set(functions(template))
    needed |= set(resources(template, "AWS::SQS::Queue"))
    assert needed <= outputs
