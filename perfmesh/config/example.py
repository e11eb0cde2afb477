"""The commented example ``perfmesh.toml`` (``perfmesh config example`` prints it)."""

EXAMPLE = '''\
# perfmesh.toml: one file for the aggregator and for agents.
# Check it with `perfmesh config check perfmesh.toml`. Command-line flags override it.
version = 1

[aggregator]
bind = "127.0.0.1"             # address for the four sockets (BASE..BASE+3)
port = 7700                    # base port
keys_dir = "/etc/perfmesh/keys"  # CURVE keys: aggregator secret key and allowed public keys
heartbeat_s = 1.0              # a host is down after 3 missed heartbeats
snapshot_interval_s = 1.0      # how often /metrics and alert rules see fresh values
auto_optimize = false          # run the [[auto_optimize]] policies below
command_timeout_s = 10.0
metrics_listen = "127.0.0.1:9790"  # Prometheus /metrics (omit to serve none)
budget_for_samples = 3         # a budget violation fires on the 3rd sample over (0: at once)
budget_clear_percent = 5.0     # ... and resolves only 5 % under the limit (0: at the limit)

[agent]
connect = "127.0.0.1:7700"     # the aggregator, HOST[:BASE]
# name = "web01"               # defaults to this machine's host name
interval_s = 1.0               # sampling interval
heartbeat_s = 1.0
key = "/etc/perfmesh/keys/agent.key_secret"         # this host's CURVE key pair
server_key = "/etc/perfmesh/keys/aggregator.key"    # the aggregator's public key
commands = true                # false refuses every remote command
allow = ["gc_collect", "memory_trim"]               # strategies this host may run
kinds = ["cpu", "memory", "io"]                     # collectors to run

[client]                       # operators' commands (status, command, top, ...): flags win,
connect = "127.0.0.1:7700"     # then PERFMESH_CONNECT / PERFMESH_KEY / PERFMESH_SERVER_KEY
# key = "/home/me/.config/perfmesh/keys/me.key_secret"
# server_key = "/etc/perfmesh/keys/aggregator.key"

[retention]
history_rows = 1000            # in-memory samples per series
data_dir = "/var/lib/perfmesh" # SQLite state
raw_window_s = 86400           # keep raw samples one day
rollups = [                    # then per-minute averages (min, max, count kept) for 30 days
  { step_s = 60, keep_s = 2592000 },
]

[budgets]                      # limits for every host (defaults apply to names left out)
cpu_percent = 80
memory_percent = 85

[groups.web]                   # budgets per host group: exact names or glob patterns
hosts = ["web*", "api01"]
budgets = { cpu_percent = 70, response_time_ms = 250 }

[groups.db]
hosts = "db-[0-9]*"
budgets = { memory_percent = 92 }

[[alerts]]                     # rules beyond a plain limit
name = "cpu-high"
metric = "cpu_percent"
warning = 85                   # over this: warning
critical = 95                  # over this: critical
for_samples = 3                # only after 3 samples in a row over a level (delay) ...
for_s = 10                     # ... that also span at least 10 seconds
clear = 75                     # resolve only below 75 (hysteresis)
repeat_s = 300                 # re-send every 5 minutes while firing
group = "web"                  # or hosts = ["web01", "web*"]; neither: every host

[[alerts]]
name = "disk-busy"
metric = "disk_busy_percent"
labels = true                  # every device: disk_busy_percent{device=...}
warning = 90
hosts = "*"
summary = "a disk is saturated"

[[auto_optimize]]              # policies: a bottleneck on selected hosts -> a strategy
bottleneck = "memory_pressure"
strategy = "gc_collect"
group = "web"
min_interval_s = 300

[[webhooks]]                   # JSON POST, retried with backoff, at-least-once
url = "http://127.0.0.1:8080/perfmesh"
timeout_s = 5
max_queue = 10000
headers = { Authorization = "Bearer change-me" }

[[alertmanagers]]              # Prometheus Alertmanager, v2 API
url = "http://127.0.0.1:9093"
resend_s = 60                  # firing alerts are re-sent this often

[alerting]
violations = true              # deliver budget violations
bottlenecks = true             # deliver detected bottlenecks

[burn_rate]                    # budget burn rate, as with SLO error budgets
allowed_fraction = 0.05        # 5 % of samples may be over the limit
windows_s = [300, 3600]        # rates over 5 minutes and 1 hour
bucket_s = 10
'''
