// Drive a Flight SQL server with @lakehouse-rs/flight-sql-client (the Rust arrow-flight client for Node)
// and print one JSON line per step, for tests/clients/test_node_flight_sql_client.py.
//
// node probe.mjs [--host H] [--port P] [--user U] [--password W] STEP...
//   (defaults from FLIGHT_HOST, FLIGHT_PORT, FLIGHT_USER, FLIGHT_PASSWORD)
// A STEP is "query:<SQL>", "catalogs", "schemas" or "tables[:<name pattern>]".
// Each output line is {"step", "ok": true, "columns": [{"name", "type"}], "rows": [{...}]}
// or {"step", "ok": false, "error": "<message>"}; a failed connection prints {"step": "connect", ...}.
import { createFlightSqlClient } from '@lakehouse-rs/flight-sql-client';
import { tableFromIPC } from 'apache-arrow';

function parseArgs(argv) {
  const options = {
    host: process.env.FLIGHT_HOST ?? '127.0.0.1',
    port: process.env.FLIGHT_PORT,
    user: process.env.FLIGHT_USER,
    password: process.env.FLIGHT_PASSWORD,
  };
  const steps = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const flag = arg.startsWith('--') ? arg.slice(2) : null;
    if (flag !== null && flag in options) {
      options[flag] = argv[++i];
    } else {
      steps.push(arg);
    }
  }
  return { options, steps };
}

// JSON cannot carry BigInt or typed arrays: numbers when exact, else strings.
function plain(value) {
  if (typeof value === 'bigint') {
    return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  }
  if (ArrayBuffer.isView(value)) {
    return Array.from(value, plain);
  }
  if (value instanceof Date) {
    return value.toISOString();
  }
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    return plain(value.toJSON());
  }
  if (Array.isArray(value)) {
    return value.map(plain);
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function describe(buffer) {
  const table = tableFromIPC(buffer);
  const columns = table.schema.fields.map((field) => ({ name: field.name, type: String(field.type) }));
  const rows = table.toArray().map((row) => plain(row.toJSON()));
  return { columns, rows };
}

async function run(client, step) {
  const colon = step.indexOf(':');
  const kind = colon < 0 ? step : step.slice(0, colon);
  const arg = colon < 0 ? undefined : step.slice(colon + 1);
  switch (kind) {
    case 'query':
      return describe(await client.query(arg));
    case 'catalogs':
      return describe(await client.getCatalogs());
    case 'schemas':
      return describe(await client.getDbSchemas({}));
    case 'tables':
      return describe(await client.getTables(arg === undefined ? {} : { tableNameFilterPattern: arg }));
    default:
      throw new Error(`unknown step kind: ${kind}`);
  }
}

const { options, steps } = parseArgs(process.argv.slice(2));
// The client panics on a worker thread when the handshake fails (it prints the server's message on
// stderr) and its promise never settles: give up after CONNECT_TIMEOUT_MS.
const connectTimeoutMs = Number(process.env.CONNECT_TIMEOUT_MS ?? 10000);
let client;
try {
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`no answer to the handshake within ${connectTimeoutMs} ms`)), connectTimeoutMs),
  );
  client = await Promise.race([timeout, createFlightSqlClient({
    host: options.host,
    port: Number(options.port),
    username: options.user,
    password: options.password,
    tls: false,
    headers: [],
  })]);
} catch (error) {
  console.log(JSON.stringify({ step: 'connect', ok: false, error: String(error?.message ?? error) }));
  process.exit(0);
}
for (const step of steps) {
  try {
    console.log(JSON.stringify({ step, ok: true, ...(await run(client, step)) }));
  } catch (error) {
    console.log(JSON.stringify({ step, ok: false, error: String(error?.message ?? error) }));
  }
}
process.exit(0); // the native client keeps the event loop alive
