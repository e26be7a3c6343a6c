// A `check --jobs N` worker thread: checks the models it is sent, one at a time, and sends back each report.
// A user error in a model is part of its report; anything else is a bug, sent back to be reported as one.
import { parentPort } from 'node:worker_threads';
import { checkModel, type CheckReply, type CheckRequest } from './check.js';

const port = parentPort!;
port.on('message', async (req: CheckRequest) => {
  let reply: CheckReply;
  try {
    reply = { index: req.index, result: await checkModel(req.file, req.opts) };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    reply = { index: req.index, bug: { name: err.name, message: err.message, stack: err.stack } };
  }
  port.postMessage(reply);
});
