// A notebook-style analysis: upload a CSV with the files API, compute with pandas in the
// sandbox's python context (variables persist from one runCode to the next), draw a chart
// with matplotlib, and save the PNG the SDK returns to a local file.
import fs from 'node:fs';
import { Sandbox } from 'sandlot';

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun'];
const rows = months.flatMap((month, i) => [
  `${month},north,${120 + 15 * i}`,
  `${month},south,${90 + 25 * i - (i % 2) * 30}`,
]);
const csv = ['month,region,sales', ...rows].join('\n') + '\n';
const output = process.env.CHART_PNG ?? 'sales-chart.png';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  await sandbox.files.write('/workspace/sales.csv', csv);
  await sandbox.runCode("import pandas as pd\ndf = pd.read_csv('/workspace/sales.csv')");

  // `df` is still there: the default python context keeps state, like a notebook.
  const totals = await sandbox.runCode("df.groupby('region')['sales'].sum().to_dict()");
  console.log(`Totals: ${totals.result}`);
  const table = await sandbox.runCode(
    "monthly = df.pivot_table(index='month', columns='region', values='sales', sort=False)\nmonthly",
  );
  console.log(`Monthly table: ${table.html ? 'an HTML table' : 'text'} with ${table.results[0].text.split('\n').length - 2} rows`);

  const chart = await sandbox.runCode(
    [
      'import matplotlib.pyplot as plt',
      "ax = monthly.plot(marker='o', title='Sales by month')",
      "ax.set_ylabel('units')",
      'plt.show()',
    ].join('\n'),
  );
  const figure = chart.results.find((r) => r.png);
  if (!figure) throw new Error(`no figure came back: ${chart.stderr}`);
  const png = Buffer.from(figure.png, 'base64');
  fs.writeFileSync(output, png);
  // A PNG's IHDR holds its width and height.
  console.log(`Saved ${output} (${png.length} bytes, ${png.readUInt32BE(16)}x${png.readUInt32BE(20)} PNG)`);
} finally {
  await sandbox.kill();
}
