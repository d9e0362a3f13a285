import { Sandbox } from 'sandlot';
const sandbox = await Sandbox.connect(JSON.parse(process.env.SESSION));
try {
  for await (const event of sandbox.streamProcess('proc_missing')) console.log(event);
} catch (e) {
  console.log('caught ' + e.name);
}
sandbox.runCodeStream(42);
setTimeout(() => console.log('still alive'), 200);
