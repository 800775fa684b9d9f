// Rewrites the generated parts of docs/performance.md from the JSON lines of several runs,
// each part from the results that belong to it (one file may hold either or both):
//
// - between bench:begin and bench:end, from `eddy bench log --json`: the median of each
//   scenario across runs, and each append's ratio to the fs.writeSync baseline of the same
//   bytes measured in the same run (median of the per-run ratios);
// - between bench-broker:begin and bench-broker:end, from `eddy bench publish --json` and
//   `eddy bench e2e --json`: the median across runs of each figure of each scenario.
//
//   for i in 1 2 3; do npx eddy bench log --json > bench-$i.json; done
//   node scripts/bench-doc.mjs bench-1.json bench-2.json bench-3.json
//   for i in 1 2 3; do npx eddy bench publish --json > publish-$i.json; npx eddy bench e2e --json > e2e-$i.json; done
//   node scripts/bench-doc.mjs publish-*.json e2e-*.json
//
// - between bench-compare:begin and bench-compare:end, from `eddy bench compare --json` (lines
//   with a `peer`, and each run's `compare-run` line): per scenario and system, the median across
//   runs with the spread (lowest–highest), and Eddy's ratio to each peer (the median of the
//   per-run ratios, each taken within one run), with the machine and commits from the runs.
//
//   for i in 1 2 3; do npx eddy bench compare --json > compare-$i.json; done
//   node scripts/bench-doc.mjs compare-*.json
//
// - between bench-micro:begin and bench-micro:end, from `eddy bench micro --json` (lines with an
//   `opsPerSec`): per case, the median ops/s across runs with the lowest and highest, and the
//   median of benny's margins of error.
//
//   for i in 1 2 3; do npx eddy bench micro --json > micro-$i.json; done
//   node scripts/bench-doc.mjs micro-*.json
//
// Scenarios that differ by publishers (`--publishers`) or keys (`--keys`) get rows of their own,
// and a column of the broker's peak RSS appears once results carry `brokerPeakRssMb`.
import fs from 'node:fs';
import os from 'node:os';
import { describeDisk } from '../dist/bench/disk.js';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node scripts/bench-doc.mjs <run.json>...');
  process.exit(2);
}
const allRuns = files.map((file) =>
  fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line)),
);
const logNames = new Set(['append', 'baseline-write', 'read']);
const brokerNames = new Set(['publish-throughput', 'publish-latency', 'e2e-latency']);
// `eddy bench compare` results carry `peer` (Eddy's too); they have a section of their own.
const runsOf = (names) =>
  allRuns
    .map((run) => run.filter((r) => names.has(r.name) && r.peer === undefined))
    .filter((run) => run.length > 0);
const runs = runsOf(logNames);
const brokerRuns = runsOf(brokerNames);
// `eddy bench micro` results are the only ones with `opsPerSec`.
const microRuns = allRuns
  .map((run) => run.filter((r) => typeof r.opsPerSec === 'number'))
  .filter((run) => run.length > 0);
const compareRuns = allRuns
  .map((run) => ({
    info: run.find((r) => r.name === 'compare-run'),
    results: run.filter((r) => r.peer !== undefined),
  }))
  .filter((run) => run.results.length > 0);
if (runs.length === 0 && brokerRuns.length === 0 && compareRuns.length === 0 && microRuns.length === 0) {
  console.error('bench-doc: no results of eddy bench log, publish, e2e, compare or micro in the files given');
  process.exit(2);
}
const docPath = new URL('../docs/performance.md', import.meta.url);
let doc = fs.readFileSync(docPath, 'utf8');

/** Replaces what is between the `<!-- marker:begin -->` and `<!-- marker:end -->` lines of the doc. */
function replaceSection(marker, lines) {
  const begin = `<!-- ${marker}:begin -->`;
  const end = `<!-- ${marker}:end -->`;
  if (!doc.includes(begin) || !doc.includes(end))
    throw new Error(`docs/performance.md needs ${begin} and ${end} markers`);
  const generated = `${begin}\n${lines.join('\n')}\n${end}`;
  doc = doc.slice(0, doc.indexOf(begin)) + generated + doc.slice(doc.indexOf(end) + end.length);
}
// Runs other than compare's carry no description of their machine: this one's is taken, the disk
// being the OS temp dir's, where the benchmarks put their data unless told otherwise (`--dir`).
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}, ${describeDisk(os.tmpdir())}`;
const today = new Date().toISOString().slice(0, 10);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const keyOf = (r) => `${r.name}|${r.params.eventBytes}|${r.params.batchEvents}|${r.params.flush ?? '-'}`;
const baselineOf = (run, r) =>
  run.find(
    (b) =>
      b.name === 'baseline-write' &&
      b.params.eventBytes === r.params.eventBytes &&
      b.params.batchEvents === r.params.batchEvents,
  );

const fmt = (n) => Math.round(n).toLocaleString('en-US');

function logSection() {
  const rows = new Map();
  for (const run of runs) {
    for (const r of run) {
      const row = rows.get(keyOf(r)) ?? { r, eventsPerSec: [], mbPerSec: [], ratio: [] };
      row.eventsPerSec.push(r.eventsPerSec);
      row.mbPerSec.push(r.mbPerSec);
      // Runs with rounds carry the ratio to the baseline of each round; older runs are compared whole.
      const baseline = baselineOf(run, r);
      if (r.ratioToBaseline !== undefined) row.ratio.push(r.ratioToBaseline);
      else if (r.name === 'append' && baseline) row.ratio.push(r.mbPerSec / baseline.mbPerSec);
      rows.set(keyOf(r), row);
    }
  }

  const lines = [
    'Numbers from `eddy bench log --json` (`npm run bench`), regenerated by `scripts/bench-doc.mjs`',
    `from ${runs.length} runs, each of several rounds alternating the baseline and the log: each figure is the`,
    `median across runs of each run's median round. Measured ${today}`,
    `on ${machine}; the machine is shared,`,
    'so compare ratios taken within one run rather than absolute figures across days.',
    '',
    '- **append**: `PartitionLog.append` with 64 appends in flight, default 128 MiB segments. Events/s counts',
    '  events (records); MB/s counts payload bytes (1 MB = 10^6 bytes), so the 56-byte batch header is overhead.',
    '  `never` leaves writeback to the OS; `interval` group-commits every 5 ms or 1 MiB (the flush runs',
    '  on the libuv pool while appends continue); `always` resolves each append after its group commit.',
    '- **baseline-write**: a plain `fs.writeSync` loop of the same payload bytes into one file, same run.',
    '- **× baseline**: append MB/s over the baseline MB/s of the same round; median over rounds, then runs.',
    "- Both loops let the event loop turn every millisecond, as a broker's does between network callbacks.",
    '- **read**: sequential `read(offset, 1 MiB)` over the log just written, CRC32C verified per batch.',
    '',
    '| scenario | event bytes | events/batch | flush | events/s | MB/s | × baseline |',
    '|---|---:|---:|---|---:|---:|---:|',
  ];
  for (const { r, eventsPerSec, mbPerSec, ratio } of rows.values()) {
    const times = ratio.length ? `${median(ratio).toFixed(2)}` : '';
    lines.push(
      `| ${r.name} | ${r.params.eventBytes} | ${r.params.batchEvents} | ${r.params.flush ?? ''} | ${fmt(median(eventsPerSec))} | ${median(mbPerSec).toFixed(1)} | ${times} |`,
    );
  }
  return lines;
}

function brokerSection() {
  const keyOfBroker = (r) =>
    [
      r.name,
      r.params.eventBytes,
      r.params.ack,
      // A searched maximum is one row whatever rate each run found.
      r.maxRateProbes === undefined ? (r.params.rate ?? '-') : 'max',
      r.params.publishers,
      r.params.keys ?? 0,
      r.params.sendIntervalMs ?? 1,
      JSON.stringify(r.params.topicConfig ?? {}),
    ].join('|');
  const rows = new Map();
  for (const run of brokerRuns) {
    for (const r of run) {
      const row = rows.get(keyOfBroker(r)) ?? { r, results: [] };
      row.results.push(r);
      rows.set(keyOfBroker(r), row);
    }
  }
  // The median of one figure over the runs that have it, or undefined.
  const figure = (results, get) => {
    const values = results.map(get).filter((value) => typeof value === 'number');
    return values.length ? median(values) : undefined;
  };
  const ms = (value) => (value === undefined ? '' : value < 10 ? value.toFixed(2) : value.toFixed(0));
  const cores = (value) => (value === undefined ? '' : value.toFixed(2));
  const rss = (value) => (value === undefined ? '' : value.toFixed(0));
  const rssWithAnon = (results) => {
    const anon = figure(results, (x) => x.brokerPeakAnonMb);
    return rss(figure(results, (x) => x.brokerPeakRssMb)) + (anon === undefined ? '' : ` (${rss(anon)})`);
  };
  const withRss = brokerRuns.some((run) => run.some((r) => typeof r.brokerPeakRssMb === 'number'));
  const counts = [...rows.values()].map((row) => row.results.length);
  const runCount =
    Math.min(...counts) === Math.max(...counts)
      ? `${counts[0]}`
      : `${Math.min(...counts)}–${Math.max(...counts)}`;
  const lingers = [...new Set(brokerRuns.flat().map((r) => r.params?.lingerMs))].filter(
    (v) => v !== undefined,
  );
  const linger =
    lingers.length === 0
      ? ''
      : `\`lingerMs\` ${lingers.join(' or ')}${lingers.includes(0) ? ', which sends a batch once the publishing code yields' : ''}; `;
  const lines = [
    'Numbers from `eddy bench publish --json` and `eddy bench e2e --json`, regenerated by',
    `\`scripts/bench-doc.mjs\`: each figure is the median of ${runCount} runs, percentiles taken one by one.`,
    `Measured ${today} on ${machine}; the broker, each publisher and the consumer are`,
    'separate processes on these 2 cores, and the machine is shared (the **others** column is the CPU',
    'the rest of the machine used during the window; 2.00 would be all of it).',
    '',
    '- **publish-throughput**: closed loop, `in-flight` publishes outstanding per publisher, one event per',
    `  \`publish\` call, batched by the SDK (${linger}\`maxBatchBytes\` 256 KiB); events acked per second.`,
    "- **publish-latency**: open loop at the offered rate; publish → ack, from each event's intended send",
    '  time (coordinated omission corrected). **e2e-latency**: the same, publish → handler of a subscriber',
    '  in another process (`from: latest`, 64 credits).',
    '- **offered/s**: *closed loop* for throughput. A rate is *not held* in a run that left scheduled',
    '  events unsent, achieved under 98 % of it or had p99 over 100 ms: its latencies are then queueing',
    '  (and a lower bound where events went unsent). **max held** is the highest rate held, searched',
    '  per run (doubling, then bisecting between held and not held rates to within 10 %); the figures',
    '  of that row are the run at the rate found.',
    '- MB/s counts event data only (1 MB = 10^6 bytes); each event also carries its id, source, type, time',
    '  and content type. Latencies in ms (HdrHistogram, 3 significant digits). CPU in cores used during',
    '  the measured window (from /proc).',
    ...(withRss
      ? [
          "- **broker RSS**: the broker process' peak resident memory over the scenario (VmHWM), MB; in",
          '  brackets, where measured, the peak of its private part (RssAnon: heap and buffers, without',
          '  the segment pages that reading maps, which are page cache the kernel can reclaim).',
        ]
      : []),
    '',
    `| scenario | event bytes | ack | offered/s | events/s | MB/s | p50 | p95 | p99 | p99.9 | max | broker CPU | publisher CPU | others |${withRss ? ' broker RSS |' : ''}`,
    `|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${withRss ? '---:|' : ''}`,
  ];
  for (const { r, results } of rows.values()) {
    const latency = (key) => ms(figure(results, (x) => x.latencyMs?.[key]));
    const publisherCores = figure(results, (x) => x.cpuCores?.publishers);
    const consumerCores = figure(results, (x) => x.cpuCores?.consumer);
    lines.push(
      [
        '',
        r.name,
        r.params.eventBytes,
        r.params.ack +
          (r.params.publishers > 1 ? ` (${r.params.publishers} publishers)` : '') +
          (r.params.keys > 0 ? ` (${r.params.keys} keys)` : '') +
          (r.params.sendIntervalMs === undefined ? '' : ` (sent every ${r.params.sendIntervalMs} ms)`) +
          Object.entries(r.params.topicConfig ?? {})
            .map(([name, value]) => ` (${name}=${value})`)
            .join(''),
        offered(r, results),
        fmt(figure(results, (x) => x.eventsPerSec)),
        figure(results, (x) => x.mbPerSec).toFixed(1),
        latency('p50'),
        latency('p95'),
        latency('p99'),
        latency('p999'),
        latency('max'),
        cores(figure(results, (x) => x.cpuCores?.broker)),
        cores(publisherCores) + (consumerCores === undefined ? '' : ` + ${cores(consumerCores)} consumer`),
        cores(figure(results, (x) => x.cpuCores?.other)),
        ...(withRss ? [rssWithAnon(results)] : []),
        '',
      ]
        .join(' | ')
        .trim(),
    );
  }
  return lines;
}

/** The offered/s cell of a broker row: closed loop, a rate and how often it was not held, or the max held. */
function offered(r, results) {
  if (r.maxRateProbes !== undefined)
    return `max held: ${spread(
      results.map((x) => x.params.rate),
      fmt,
    )}`;
  if (r.params.rate === undefined) return 'closed loop';
  const notHeld = results.filter((x) => x.overloaded === true).length;
  return fmt(r.params.rate) + (notHeld === 0 ? '' : ` (not held in ${notHeld} of ${results.length})`);
}

/** `value (lowest–highest)` of a figure over the runs, or the value alone from one run. */
function spread(values, format) {
  if (values.length === 0) return '';
  const low = Math.min(...values);
  const high = Math.max(...values);
  return values.length === 1 || low === high
    ? format(median(values))
    : `${format(median(values))} (${format(low)}–${format(high)})`;
}

function compareSection() {
  // Eddy has a row per ack level measured (a run measures it at several), each peer one.
  const eddyAcks = ['leader', 'durable'];
  const systems = [...eddyAcks.map((ack) => `eddy/${ack}`), 'nats', 'redis', 'redis-aof'];
  const systemOf = (r) => (r.peer === 'eddy' ? `eddy/${r.params.ack ?? 'leader'}` : r.peer);
  const groupKey = (r) =>
    [r.name, r.params.eventBytes, r.params.rate ?? 'max', r.params.publishers ?? 1, r.params.keys ?? 0].join(
      '|',
    );
  const withRss = compareRuns.some(({ results }) =>
    results.some((r) => typeof r.brokerPeakRssMb === 'number'),
  );
  const withLoads = compareRuns.some(({ results }) =>
    results.some((r) => (r.params.publishers ?? 1) !== 1 || (r.params.keys ?? 0) !== 0),
  );
  // scenario → system → results, in the order the runs met them.
  const groups = new Map();
  for (const { results } of compareRuns) {
    for (const r of results) {
      const group = groups.get(groupKey(r)) ?? { r, bySystem: new Map() };
      const list = group.bySystem.get(systemOf(r)) ?? [];
      list.push(r);
      group.bySystem.set(systemOf(r), list);
      groups.set(groupKey(r), group);
    }
  }
  const infos = compareRuns.map((run) => run.info).filter(Boolean);
  const first = infos[0];
  const commits = [...new Set(infos.map((info) => info.commit ?? 'unknown'))];
  const dates = [...new Set(infos.map((info) => info.startedAt.slice(0, 10)))];
  const described = new Map();
  for (const info of infos) {
    for (const [system, description] of Object.entries(info.systems)) described.set(system, description);
  }
  const ms = (value) => (value < 10 ? value.toFixed(2) : Math.round(value).toLocaleString('en-US'));
  const times = (value) => `${value < 10 ? value.toFixed(2) : value.toFixed(1)}×`;
  const ratiosOf = (r) => r.ratioTo ?? {};
  const cores = (values) => (values.length === 0 ? '' : median(values).toFixed(2));
  const lines = [
    `Regenerated by \`scripts/bench-doc.mjs\` from ${compareRuns.length} run${compareRuns.length === 1 ? '' : 's'} of \`eddy bench compare --json\``,
    `(${dates.join(', ')}; commit ${commits.map((c) => `\`${c}\``).join(', ')}) on ${
      first
        ? `${first.cores} × ${first.cpuModel}, Node ${first.node}${first.disk ? `, ${first.disk}` : ''}`
        : machine
    }. Each figure is the median across runs, the lowest and highest in brackets; **Eddy ÷** is`,
    "Eddy's figure over the system's from the same scenario of the same run (median of the per-run",
    'ratios): events/s above 1 and latencies below 1 favour Eddy. Latencies in ms. **broker CPU**: cores',
    "the broker's process used in the measured window (median); **others**: what the rest of the",
    'machine used meanwhile (2.00 would be all of it; above 0.2 the run was noisy). **complete**: runs',
    'in which every scheduled event was sent and acked without error (and, for e2e, consumed). A',
    'system can be complete and still fall behind: events/s below the offered rate and latencies of',
    'seconds mean the rate was beyond it, and those latencies are mostly queueing.',
    ...(withLoads
      ? [
          '**publishers**: publisher processes; **keys**: distinct keys the events cycled through (Eddy:',
          "the SDK's `key`, one batch per key; NATS: a subject per key; Redis: a `key` field in each entry).",
        ]
      : []),
    ...(withRss
      ? [
          "**broker RSS**: the broker process' peak resident memory in the scenario, MB: VmHWM of a",
          'server started for it (Eddy, redis-aof), the highest VmRSS sampled every 100 ms of a shared one',
          "(NATS, the machine's Redis, whose memory also holds what earlier work left).",
        ]
      : []),
    '',
    ...['eddy', 'nats', 'redis', 'redis-aof']
      .filter((system) => described.has(system))
      .map(
        (system) => `- **${system}** (${described.get(system).server}): ${described.get(system).durability}.`,
      ),
    '',
    `| scenario | event bytes | offered/s |${withLoads ? ' publishers | keys |' : ''} system | complete | events/s | p50 | p99 | p99.9 | Eddy ÷ (events/s) | Eddy ÷ (p99) | broker CPU | others |${withRss ? ' broker RSS |' : ''}`,
    `|---|---:|---:|${withLoads ? '---:|---:|' : ''}---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${withRss ? '---:|' : ''}`,
  ];
  for (const { r, bySystem } of groups.values()) {
    const eddyLevels = eddyAcks.filter((ack) => bySystem.has(`eddy/${ack}`));
    for (const system of systems) {
      const all = bySystem.get(system);
      if (all === undefined) continue;
      const results = all.filter((x) => x.failed === undefined);
      // Runs in which every scheduled event was sent, acked (and consumed) without an error.
      const complete = results.filter(
        (x) => x.errors === undefined && x.unsent === undefined && (x.lost ?? 0) === 0,
      ).length;
      const values = (get) => results.map(get).filter((value) => typeof value === 'number');
      // Eddy's ratio to this peer, one per ack level measured (named when there are several).
      const eddyRatios = (get) =>
        eddyLevels
          .map((ack) => {
            const ratios = bySystem
              .get(`eddy/${ack}`)
              .map((e) => get(ratiosOf(e)[system]))
              .filter((value) => typeof value === 'number');
            if (ratios.length === 0) return '';
            return `${eddyLevels.length > 1 ? `${ack} ` : ''}${spread(ratios, times)}`;
          })
          .filter(Boolean)
          .join('<br>');
      const latency = results.some((x) => x.latencyMs !== undefined);
      const peer = !system.startsWith('eddy/');
      const cells = [
        r.name,
        r.params.eventBytes,
        offered(r, results),
        ...(withLoads ? [r.params.publishers ?? 1, r.params.keys ?? 'unkeyed'] : []),
        peer ? system : `**eddy** \`${system.slice('eddy/'.length)}\``,
        `${complete}/${all.length}`,
        spread(
          values((x) => x.eventsPerSec),
          fmt,
        ),
        latency
          ? spread(
              values((x) => x.latencyMs?.p50),
              ms,
            )
          : '',
        latency
          ? spread(
              values((x) => x.latencyMs?.p99),
              ms,
            )
          : '',
        latency
          ? spread(
              values((x) => x.latencyMs?.p999),
              ms,
            )
          : '',
        peer ? eddyRatios((x) => x?.eventsPerSec) : '',
        peer && latency ? eddyRatios((x) => x?.latencyMs?.p99) : '',
        cores(values((x) => x.cpuCores?.broker)),
        cores(values((x) => x.cpuCores?.other)),
        ...(withRss
          ? [
              spread(
                values((x) => x.brokerPeakRssMb),
                (value) => value.toFixed(0),
              ),
            ]
          : []),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  const failures = compareRuns.flatMap(({ results }) => results.filter((x) => x.failed !== undefined));
  if (failures.length > 0) {
    lines.push('', 'Scenarios that failed (left out of the figures above):', '');
    for (const x of failures)
      lines.push(
        `- ${x.peer} ${x.name} ${x.params.eventBytes} B ${x.params.rate ?? 'max'}` +
          `${(x.params.publishers ?? 1) === 1 ? '' : `, ${x.params.publishers} publishers`}` +
          `${x.params.keys === undefined ? '' : `, ${x.params.keys} keys`}: ${x.failed}`,
      );
  }
  return lines;
}

function microSection() {
  const keyOfMicro = (r) => `${r.name}|${JSON.stringify(r.params)}`;
  const rows = new Map();
  for (const run of microRuns) {
    for (const r of run) {
      const row = rows.get(keyOfMicro(r)) ?? { r, results: [] };
      row.results.push(r);
      rows.set(keyOfMicro(r), row);
    }
  }
  const counts = [...rows.values()].map((row) => row.results.length);
  const runCount =
    Math.min(...counts) === Math.max(...counts)
      ? `${counts[0]} run${counts[0] === 1 ? '' : 's'}`
      : `${Math.min(...counts)}–${Math.max(...counts)} runs`;
  const units = { event: 'events/s', message: 'messages/s', call: 'calls/s', compile: 'compiles/s' };
  const lines = [
    'Numbers from `eddy bench micro --json`, regenerated by `scripts/bench-doc.mjs` from',
    microRuns.length === 1
      ? `${runCount} (no spread across runs: run it three times for medians), with`
      : `${runCount}: each figure is the median across runs, the lowest and highest in brackets, and`,
    "**±** the median of benny's relative margins of error (95 %). Measured",
    `${today} on ${machine}, one case at a time on the calling thread (the ring's`,
    'cross-thread case also on a worker thread); the machine is shared, so compare rows of one run.',
    '',
    '| case | params | rate | ± |',
    '|---|---|---:|---:|',
  ];
  for (const { r, results } of rows.values()) {
    const { op, ...rest } = r.params;
    const params = Object.entries(rest)
      .map(([key, value]) => `${key} ${value}`)
      .join(', ');
    const rate = spread(
      results.map((x) => x.opsPerSec),
      fmt,
    );
    const margin = median(results.map((x) => x.margin)).toFixed(1);
    lines.push(`| ${r.name} | ${params} | ${rate} ${units[op] ?? `${op}s/s`} | ${margin} % |`);
  }
  return lines;
}

if (runs.length > 0) replaceSection('bench', logSection());
if (brokerRuns.length > 0) replaceSection('bench-broker', brokerSection());
if (compareRuns.length > 0) replaceSection('bench-compare', compareSection());
if (microRuns.length > 0) replaceSection('bench-micro', microSection());
fs.writeFileSync(docPath, doc);
