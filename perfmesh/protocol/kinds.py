"""Every name the protocol uses, in one module (as the ZeroMQ guide keeps MDP's constants).

Use these names, never the string literals: a typo is then an AttributeError at import, not a
message that silently matches nothing.

- envelope kinds: what an envelope is (``kind`` field, checked by :mod:`.wire`);
- stream event types: the first part of a stream topic and an event's ``type``;
- host states: the ``state`` of a ``host`` event; alert states: of a ``violation`` event;
- api ops: what an operator asks for (the ``op`` of a ``request``);
- statuses: the ``status`` of a reply or of a command's outcome.
"""

from __future__ import annotations

# ------------------------------------------------------------------ envelope kinds
METRICS = "metrics"        # agent -> aggregator (ingest), re-published on the stream
HEARTBEAT = "heartbeat"    # both ways on control
REGISTER = "register"      # agent -> aggregator (control)
RESULT = "result"          # agent -> aggregator: a command outcome
COMMAND = "command"        # aggregator -> agent
BACKFILL = "backfill"      # aggregator -> agent: please resend a range
REQUEST = "request"        # operator -> aggregator (api)
REPLY = "reply"            # aggregator -> operator (api); agent -> aggregator (backfill answer)
EVENT = "event"            # aggregator -> subscribers (stream)
KINDS = frozenset({METRICS, HEARTBEAT, REGISTER, RESULT, COMMAND, BACKFILL, REQUEST, REPLY, EVENT})

# ------------------------------------------------------------------ local topics
BATCH = "batch"            # collector -> agent (ipc): one columnar batch

# ------------------------------------------------------------------ stream event types
EVENT_METRIC = "metric"
EVENT_HOST = "host"
EVENT_GAP = "gap"
EVENT_VIOLATION = "violation"
EVENT_BOTTLENECK = "bottleneck"
EVENT_COMMAND = "command"
EVENT_TYPES = (EVENT_METRIC, EVENT_VIOLATION, EVENT_BOTTLENECK, EVENT_COMMAND, EVENT_HOST, EVENT_GAP)

# ------------------------------------------------------------------ states
HOST_UP = "up"
HOST_DOWN = "down"
HOST_REGISTERED = "registered"
HOST_STATES = (HOST_UP, HOST_DOWN, HOST_REGISTERED)

FIRING = "firing"
RESOLVED = "resolved"
ALERT_STATES = (FIRING, RESOLVED)

# ------------------------------------------------------------------ api ops
OP_STATUS = "status"
OP_HISTORY = "history"
OP_COMMAND = "command"
OP_ALERTS = "alerts"       # the alert log, a page at a time
OP_ACK = "ack"             # acknowledge an alert of the log (operators only)
OPS = (OP_STATUS, OP_HISTORY, OP_COMMAND, OP_ALERTS, OP_ACK)

# ------------------------------------------------------------------ statuses
STATUS_OK = "ok"                            # an api request answered
STATUS_ERROR = "error"                      # an api request that could not be read
STATUS_SUCCESS = "success"                  # a command ran and succeeded
STATUS_FAILED = "failed"                    # a command ran and failed
STATUS_REFUSED = "refused"                  # a command refused before it ran
STATUS_BUSY = "busy"                        # refused by a rate limit
STATUS_TIMEOUT = "timeout"                  # no outcome before the deadline
STATUS_UNKNOWN_OUTCOME = "unknown_outcome"  # the agent restarted: it may or may not have run
COMMAND_STATUSES = (STATUS_SUCCESS, STATUS_FAILED, STATUS_REFUSED, STATUS_TIMEOUT,
                    STATUS_UNKNOWN_OUTCOME, STATUS_BUSY)
