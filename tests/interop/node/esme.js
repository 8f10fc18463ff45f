// An ESME built on the npm package `smpp` (node-smpp), for Hongyan's interop tests.
//
//   node esme.js PORT SYSTEM_ID PASSWORD
//
// Connects to 127.0.0.1:PORT and binds as a transceiver, then prints one JSON
// object a line on stdout: {"event":"bound","status":N,"system_id":...} first,
// then one line per PDU received (decoded by node-smpp, Buffers as hex) and
// one per answer to a command. deliver_sm (receipts and MO) is answered
// with deliver_sm_resp at once. Commands come on stdin, one JSON object a line:
//   {"cmd":"submit","ref":R,"dest":"138...","source":"...","text":"...","udh":"0500..",
//    "data_coding":N,"payload":true}   -> {"event":"submit_sm_resp","ref":R,...}
//   {"cmd":"enquire_link"}             -> {"event":"enquire_link_resp",...}
//   {"cmd":"unbind"}                   -> {"event":"unbind_resp",...}
//   {"cmd":"quit"}
'use strict';

const smpp = require('smpp');
const readline = require('readline');

const [port, systemId, password] = process.argv.slice(2);

function plain(value) {
  if (Buffer.isBuffer(value)) return value.toString('hex');
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(plain(obj)) + '\n');
}

function fields(pdu) {
  const out = {};
  for (const [k, v] of Object.entries(pdu)) if (typeof v !== 'function') out[k] = v;
  return out;
}

const session = smpp.connect({host: '127.0.0.1', port: Number(port)});
session.on('error', (e) => emit({event: 'error', message: String(e)}));
session.on('close', () => {
  emit({event: 'closed'});
  process.exit(0);
});
session.on('deliver_sm', (pdu) => {
  emit({event: 'deliver_sm', pdu: fields(pdu)});
  session.send(pdu.response());
});
session.on('enquire_link', (pdu) => session.send(pdu.response()));
session.on('unbind', (pdu) => {
  session.send(pdu.response());
  session.close();
});
session.on('connect', () => {
  session.bind_transceiver({system_id: systemId, password: password}, (pdu) => {
    emit({event: 'bound', status: pdu.command_status, system_id: pdu.system_id});
  });
});

readline.createInterface({input: process.stdin}).on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'quit') {
    session.destroy();
    process.exit(0);
  }
  if (cmd.cmd === 'submit') {
    const message = cmd.udh ? {udh: Buffer.from(cmd.udh, 'hex'), message: cmd.text} : cmd.text;
    const options = {
      source_addr: cmd.source || '',
      destination_addr: cmd.dest,
      registered_delivery: cmd.registered_delivery === undefined ? 1 : cmd.registered_delivery,
    };
    if (cmd.data_coding !== undefined) options.data_coding = cmd.data_coding;
    if (cmd.payload) options.message_payload = message; else options.short_message = message;
    session.submit_sm(options, (resp) => emit({
      event: 'submit_sm_resp', ref: cmd.ref, status: resp.command_status, message_id: resp.message_id,
    }), (sent) => emit({event: 'submit_sm_sent', ref: cmd.ref, data_coding: sent.data_coding,
      esm_class: sent.esm_class, bytes: sent.toBuffer()}));
  }
  if (cmd.cmd === 'enquire_link') {
    session.enquire_link((resp) => emit({event: 'enquire_link_resp', status: resp.command_status}));
  }
  if (cmd.cmd === 'unbind') {
    session.unbind((resp) => emit({event: 'unbind_resp', status: resp.command_status}));
  }
});
process.stdin.on('end', () => process.exit(0));
