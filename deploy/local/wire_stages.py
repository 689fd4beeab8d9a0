#!/usr/bin/env python3
"""Where a job's latency goes, read off the loopback wire.

`make bench` with BENCH_TRACE=1 runs one extra latency run from a single
client at a low rate (one job per envelope, one envelope every 10 ms at
100 jobs/s) under `tcpdump -i lo`, and this script turns the capture into
per-stage medians. Every hand-off of a job between the processes is a
packet: the bench's publish, its delivery to the coordinator, the intake
INSERT and its result, the task publish, its delivery to the worker, the
report publish, its delivery, the completion UPDATE and its result.

Usage: wire_stages.py PACKETS SOCKETS
  PACKETS  `tcpdump -nn -tt -r CAPTURE` output (one line per packet)
  SOCKETS  `ss -tnp` output taken during the run (names each connection)

Packets are told apart by direction and size, which holds for the no-op
jobs the bench submits one at a time: submissions, task messages and
reports are the only AMQP frames above 150 bytes, the INSERT is the only
statement above 600 bytes and the completion UPDATE the only one between
250 and 600. A job whose packets do not all appear before the next
envelope (it overlapped the next job) is skipped and counted.
"""

import re
import statistics
import sys

AMQP, POSTGRES = "5672", "5432"

STAGES = [
    "bench publishes -> coordinator has the envelope (hop 1)",
    "-> INSERT sent",
    "INSERT (with dispatch) and its commit",
    "result -> task message written",
    "-> worker has the task (hop 2)",
    "worker: run, report written",
    "-> coordinator has the report (hop 3)",
    "-> completion UPDATE sent",
    "UPDATE and its commit (after finished_at)",
]


def processes(sockets_path):
    """Maps each local client port of an AMQP connection to its process."""
    names = {}
    for line in open(sockets_path):
        fields = line.split()
        if len(fields) < 6 or not fields[4].endswith(":" + AMQP):
            continue
        port = fields[3].rsplit(":", 1)[1]
        users = fields[5]
        if "warren-worker" in users:
            names[port] = "worker"
        elif "warren-coordina" in users:
            names[port] = "coordinator"
        elif '"warren"' in users:
            names[port] = "bench"
    return names


def packets(packets_path, names):
    """(time, sender, receiver, client port, payload bytes) of each data packet."""
    pattern = re.compile(r"^(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+):.* length (\d+)")
    out = []
    for line in open(packets_path):
        match = pattern.match(line)
        if not match or int(match.group(4)) == 0:
            continue
        time, src, dst, size = float(match.group(1)), match.group(2), match.group(3), int(match.group(4))
        if dst == AMQP:
            out.append((time, names.get(src, src), "rabbitmq", src, size))
        elif src == AMQP:
            out.append((time, "rabbitmq", names.get(dst, dst), dst, size))
        elif dst == POSTGRES:
            out.append((time, "coordinator", "postgres", src, size))
        elif src == POSTGRES:
            out.append((time, "postgres", "coordinator", dst, size))
    return out


def first(job, after, test):
    """The first packet of `job` at or after `after` that passes `test`."""
    for packet in job:
        if packet[0] >= after and test(packet):
            return packet
    return None


def stages(job):
    """The ten timestamps of one job's hand-offs, or None if any is missing."""
    start = job[0]
    steps = [
        lambda p: p[1] == "rabbitmq" and p[2] == "coordinator" and p[4] > 150,
        lambda p: p[2] == "postgres" and p[4] > 600,
        None,  # the INSERT's result, on its connection
        lambda p: p[1] == "coordinator" and p[2] == "rabbitmq" and p[4] > 150,
        lambda p: p[1] == "rabbitmq" and p[2] == "worker" and p[4] > 150,
        lambda p: p[1] == "worker" and p[2] == "rabbitmq" and p[4] > 150,
        lambda p: p[1] == "rabbitmq" and p[2] == "coordinator" and p[4] > 150,
        lambda p: p[2] == "postgres" and 250 < p[4] < 600,
        None,  # the UPDATE's result, on its connection
    ]
    times = [start[0]]
    previous = start
    for test in steps:
        if test is None:
            port = previous[3]
            test = lambda p, port=port: p[1] == "postgres" and p[3] == port and p[4] > 100
        packet = first(job, times[-1], test)
        if packet is None:
            return None
        times.append(packet[0])
        previous = packet
    return times


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    all_packets = packets(sys.argv[1], processes(sys.argv[2]))
    starts = [i for i, p in enumerate(all_packets) if p[1] == "bench" and p[4] > 150]
    durations = [[] for _ in STAGES]
    totals, skipped = [], 0
    for this, following in zip(starts, starts[1:]):
        job = all_packets[this : following]
        times = stages(job)
        if times is None:
            skipped += 1
            continue
        for i in range(len(STAGES)):
            durations[i].append((times[i + 1] - times[i]) * 1000)
        totals.append((times[8] - times[0]) * 1000)
    if not totals:
        sys.exit("wire_stages: no job with every hand-off in the capture")
    print(f"wire stages: {len(totals)} jobs ({skipped} skipped), medians in ms")
    for name, values in zip(STAGES, durations):
        print(f"  {statistics.median(values):6.3f}  {name}")
    print(f"  {statistics.median(totals):6.3f}  publish -> UPDATE sent (the measured latency)")


if __name__ == "__main__":
    main()
