// The playground page. It holds a sandbox session (sandbox id, agent token, agent URL) that
// the backend created with the API key, and calls the sandbox's agent directly from the
// browser: run code in the background, follow the selected process's output live, list the
// processes with their status, kill the running ones; browse the sandbox's files (list,
// upload, download, delete); and type into a terminal (the SDK's fetch-based terminal).
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

// ---- files ---------------------------------------------------------------------------------

const files = {
  cwd: $('cwd'),
  list: $('files'),
  status: $('files-status'),
  upload: $('upload'),
};
let cwd = '/workspace';

function filesStatus(text, isError = false) {
  files.status.textContent = text;
  files.status.classList.toggle('error', isError);
}

async function listFiles(path = cwd) {
  try {
    const entries = await sandbox.files.list(path);
    cwd = path;
    files.cwd.textContent = path;
    files.list.replaceChildren(
      ...entries.map((e) => {
        const row = document.createElement('tr');
        row.dataset.name = e.name;
        const name = Object.assign(document.createElement('td'), { className: 'name' });
        name.append(Object.assign(document.createElement('button'), { className: e.isDir ? 'open' : 'download', textContent: e.isDir ? `${e.name}/` : e.name, title: e.isDir ? 'open' : 'download' }));
        const size = Object.assign(document.createElement('td'), { textContent: e.isDir ? '' : String(e.size) });
        const time = Object.assign(document.createElement('td'), { textContent: e.modifiedTime.replace('T', ' ').replace(/\.\d+Z$/, '') });
        const actions = document.createElement('td');
        actions.append(Object.assign(document.createElement('button'), { className: 'delete', textContent: 'Delete' }));
        row.append(name, size, time, actions);
        return row;
      }),
    );
    filesStatus(entries.length ? '' : 'empty directory');
  } catch (error) {
    filesStatus(`list failed: ${describe(error)}`, true);
  }
}

const join = (dir, name) => `${dir.replace(/\/$/, '')}/${name}`;

async function download(path) {
  try {
    const bytes = await sandbox.files.download(path);
    const url = URL.createObjectURL(new Blob([bytes]));
    const link = Object.assign(document.createElement('a'), { href: url, download: path.split('/').pop() });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    filesStatus(`downloaded ${path} (${bytes.length} bytes)`);
  } catch (error) {
    filesStatus(`download failed: ${describe(error)}`, true);
  }
}

async function remove(path) {
  try {
    await sandbox.files.remove(path);
    filesStatus(`deleted ${path}`);
  } catch (error) {
    filesStatus(`delete failed: ${describe(error)}`, true);
  }
  await listFiles();
}

files.list.addEventListener('click', (e) => {
  const row = e.target.closest('tr');
  if (!row) return;
  const path = join(cwd, row.dataset.name);
  if (e.target.closest('button.open')) listFiles(path);
  else if (e.target.closest('button.download')) download(path);
  else if (e.target.closest('button.delete')) remove(path);
});
// Up to /workspace or /tmp: the sandbox's files API reaches nothing above them.
$('up').addEventListener('click', () => /^\/(workspace|tmp)\/./.test(cwd) && listFiles(cwd.replace(/\/[^/]+$/, '')));
$('reload').addEventListener('click', () => listFiles());
files.upload.addEventListener('change', async () => {
  // Each file streams up as a Blob (multipart): no size limit of a JSON body.
  for (const file of files.upload.files) {
    try {
      await sandbox.files.write(join(cwd, file.name), file);
      filesStatus(`uploaded ${file.name} (${file.size} bytes)`);
    } catch (error) {
      filesStatus(`upload failed: ${describe(error)}`, true);
    }
  }
  files.upload.value = '';
  await listFiles();
});

// ---- terminal ------------------------------------------------------------------------------

const term = {
  screen: $('terminal'),
  input: $('terminal-input'),
  state: $('terminal-state'),
};
let terminal; // the open TerminalHandle

/** Terminal output without its escape sequences (colours, cursor moves, bracketed paste). */
const plain = (text) => text.replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07]*\x07|\r(?!\n)/g, '');

async function openTerminal() {
  term.screen.textContent = '';
  try {
    const mine = await sandbox.terminal.create({ cols: 100, rows: 30 });
    terminal = mine;
    term.state.textContent = `${mine.id} · running`;
    document.body.dataset.terminal = 'ready';
    for await (const event of mine) {
      if (terminal !== mine) break;
      if (event.type === 'output') {
        term.screen.append(plain(event.data));
        term.screen.scrollTop = term.screen.scrollHeight;
      } else if (event.type === 'exit') {
        term.state.textContent = `${mine.id} · exited (${event.code})`;
      }
    }
  } catch (error) {
    term.state.textContent = `terminal failed: ${describe(error)}`;
  }
}

$('terminal-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const line = term.input.value;
  term.input.value = '';
  try {
    await terminal?.write(`${line}\n`);
  } catch (error) {
    term.state.textContent = `write failed: ${describe(error)}`;
  }
});
$('terminal-new').addEventListener('click', () => {
  terminal?.kill().catch(() => {});
  openTerminal();
});

// ---- preview: a signed link to a port of the sandbox ------------------------------------------

$('preview-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const link = $('preview-link');
  try {
    // The session token is enough: the link carries its own signed token, valid for an hour.
    const preview = await sandbox.getPreviewUrl(Number($('preview-port').value), { ttl: 3600 });
    link.href = preview.url;
    link.textContent = `open port ${preview.port} (until ${new Date(preview.expiresAt).toLocaleTimeString()})`;
  } catch (error) {
    link.removeAttribute('href');
    link.textContent = describe(error);
  }
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
  listFiles();
  openTerminal();
}

start().catch((error) => setStatus(`could not start: ${describe(error)}`, true));
