// The playground page. It holds a sandbox session (sandbox id, agent token, agent URL) that
// the backend created with the API key, and calls the sandbox's agent directly from the
// browser: run code in the background, follow the selected process's output live, list the
// processes with their status, kill the running ones.
import { Sandbox, SandlotError } from 'sandlot';
import './style.css';

const SAMPLES = {
  python: 'import time\n\nfor i in range(5):\n    print(f"tick {i}")\n    time.sleep(0.5)\nprint("done")\n',
  javascript:
    'let i = 0;\nconst timer = setInterval(() => {\n  console.log(`tick ${i}`);\n  if (++i === 5) {\n    clearInterval(timer);\n    console.log("done");\n  }\n}, 500);\n',
  bash: 'for i in 0 1 2 3 4; do\n  echo "tick $i"\n  sleep 0.5\ndone\necho done\n',
};
const RUNNING = new Set(['queued', 'running']);

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  language: $('language'),
  code: $('code'),
  run: $('run'),
  processes: $('processes'),
  noProcesses: $('no-processes'),
  output: $('output'),
  outputTitle: $('output-title'),
};

let sandbox;
let processes = []; // the last listProcesses(), newest first
let selected; // processId whose output is shown
let following; // { processId, stream } of the open output stream
let runs = 0;
let warning; // the backend's CORS warning, kept visible over later errors

function setStatus(text, isError = false) {
  ui.status.textContent = warning ? `${warning} (${text})` : text;
  ui.status.classList.toggle('error', isError);
}

function describe(error) {
  return error instanceof SandlotError ? `${error.name} (${error.code}): ${error.message}` : String(error);
}

function append(text, className) {
  const node = className ? Object.assign(document.createElement('span'), { className, textContent: text }) : document.createTextNode(text);
  ui.output.append(node);
  ui.output.scrollTop = ui.output.scrollHeight;
}

// ---- processes ---------------------------------------------------------------------------

function render() {
  ui.noProcesses.hidden = processes.length > 0;
  ui.processes.replaceChildren(
    ...processes.map((p) => {
      const row = document.createElement('tr');
      row.dataset.processId = p.processId;
      row.dataset.status = p.status;
      row.classList.toggle('selected', p.processId === selected);
      row.title = p.processId;
      const cells = [p.name ?? p.processId, '', p.exitCode ?? '', ''].map((text) => {
        const cell = document.createElement('td');
        cell.textContent = text;
        return cell;
      });
      cells[1].append(Object.assign(document.createElement('span'), { className: `badge ${p.status}`, textContent: p.status }));
      if (RUNNING.has(p.status)) {
        cells[3].append(Object.assign(document.createElement('button'), { className: 'kill', textContent: 'Kill' }));
      }
      row.append(...cells);
      return row;
    }),
  );
}

async function refresh() {
  const list = await sandbox.listProcesses();
  processes = list.sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? ''));
  render();
}

function setProcessStatus(processId, status, exitCode) {
  const p = processes.find((p) => p.processId === processId);
  if (p) Object.assign(p, { status }, exitCode === undefined ? {} : { exitCode });
  render();
}

/** Polls the process list once a second; streams update the selected process sooner. */
async function poll() {
  try {
    await refresh();
  } catch (error) {
    setStatus(`listProcesses failed: ${describe(error)}`, true);
  }
  setTimeout(poll, 1000);
}

// ---- output --------------------------------------------------------------------------------

/** Shows `processId`'s output: everything the server kept, then live until it exits. */
async function select(processId) {
  if (following) following.stream?.close();
  selected = processId;
  const mine = { processId };
  following = mine;
  ui.output.replaceChildren();
  const p = processes.find((p) => p.processId === processId);
  ui.outputTitle.textContent = p?.name ?? processId;
  render();
  try {
    mine.stream = await sandbox.streamProcess(processId);
    if (following !== mine) return mine.stream.close();
    for await (const event of mine.stream) {
      if (following !== mine) break;
      if (event.type === 'stdout') append(event.data);
      else if (event.type === 'stderr') append(event.data, 'stderr');
      else if (event.type === 'truncated') append(`\n[${event.droppedBytes} bytes dropped]\n`, 'note');
      else if (event.type === 'exit') {
        const code = event.exitCode === undefined ? '' : `, exit code ${event.exitCode}`;
        append(`\n[${event.status}${code}]\n`, 'note');
        setProcessStatus(processId, event.status, event.exitCode);
      }
    }
  } catch (error) {
    if (following === mine) append(`\n[stream failed: ${describe(error)}]\n`, 'stderr');
  }
}

// ---- actions -------------------------------------------------------------------------------

async function run() {
  const language = ui.language.value;
  ui.run.disabled = true;
  try {
    const started = await sandbox.runCodeBackground(ui.code.value, { language, name: `${language} #${++runs}`, timeout: 600 });
    processes.unshift({ processId: started.processId, name: started.name, status: started.status });
    select(started.processId);
    await refresh();
  } catch (error) {
    setStatus(`run failed: ${describe(error)}`, true);
  } finally {
    ui.run.disabled = false;
  }
}

async function kill(processId) {
  try {
    await sandbox.killProcess(processId);
    await refresh();
  } catch (error) {
    setStatus(`kill failed: ${describe(error)}`, true);
  }
}

ui.run.addEventListener('click', run);
ui.code.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !ui.run.disabled) run();
});
ui.language.addEventListener('change', () => {
  // Swap the sample in, unless the user has written their own code.
  if (Object.values(SAMPLES).includes(ui.code.value)) ui.code.value = SAMPLES[ui.language.value];
});
ui.processes.addEventListener('click', (e) => {
  const row = e.target.closest('tr');
  if (!row) return;
  if (e.target.closest('button.kill')) kill(row.dataset.processId);
  else if (row.dataset.processId !== selected) select(row.dataset.processId);
});

// ---- start ---------------------------------------------------------------------------------

async function start() {
  ui.code.value = SAMPLES.python;
  // The backend creates the sandbox (it has the API key) and sends only a session.
  const res = await fetch('/api/session', { method: 'POST' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `backend answered ${res.status}`);
  sandbox = await Sandbox.connect(body.session);
  if (body.warning) {
    setStatus(body.warning, true);
    warning = body.warning;
  } else {
    setStatus(`sandbox ${sandbox.sandboxId} · agent ${new URL(sandbox.agentUrl).host}`);
  }
  ui.run.disabled = false;
  document.body.dataset.ready = 'true';
  poll();
}

start().catch((error) => setStatus(`could not start: ${describe(error)}`, true));
