// An SMSC built on the npm package `smpp` (node-smpp), for Hongyan's interop tests.
//
//   node smsc.js SYSTEM_ID PASSWORD
//
// Listens on a free loopback port and prints one JSON object a line on stdout:
// {"event":"listening","port":N} first, then one line per PDU it received
// (decoded by node-smpp, Buffers as hex). It answers binds (checking the
// credentials), submit_sm (message_id "NS" + a counter, then a delivery
// receipt as deliver_sm when registered_delivery asks for one and the session
// bound to receive), enquire_link and unbind. Commands come on stdin, one JSON
// object a line:
//   {"cmd":"mo","source":"139...","dest":"1069...","text":"...","udh":"050003..."}
//     sends an MO deliver_sm (udh optional, hex; text encoded by node-smpp)
//   {"cmd":"quit"}
'use strict';

const smpp = require('smpp');
const readline = require('readline');

const [systemId, password] = process.argv.slice(2);
let nextId = 0x5000;
let bound = null;

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

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

const server = smpp.createServer((session) => {
  session.on('error', (e) => emit({event: 'error', message: String(e)}));
  session.on('pdu', (pdu) => {
    const fields = {};
    for (const [k, v] of Object.entries(pdu)) if (typeof v !== 'function') fields[k] = v;
    emit({event: pdu.command, pdu: fields});
  });
  for (const bind of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) {
    session.on(bind, (pdu) => {
      if (pdu.system_id !== systemId || pdu.password !== password) {
        session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
        session.close();
        return;
      }
      session.send(pdu.response({system_id: 'NODESMSC'}));
      // Receipts and MO go only to sessions that bound to receive (SMPP 3.4, 2.2).
      session.receives = bind !== 'bind_transmitter';
      if (session.receives) bound = session;
    });
  }
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('close', () => { if (bound === session) bound = null; });
  session.on('submit_sm', (pdu) => {
    const id = (nextId++).toString(16).toUpperCase();
    const messageId = 'NS' + id;
    session.send(pdu.response({message_id: messageId}));
    if ((pdu.registered_delivery & 0x03) && session.receives) {
      const now = stamp(new Date());
      const text = `id:${messageId} sub:001 dlvrd:001 submit date:${now} done date:${now} ` +
        'stat:DELIVRD err:000 text:';
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
        short_message: Buffer.from(text, 'ascii'),
        receipted_message_id: messageId,
        message_state: smpp.MESSAGE_STATE.DELIVERED,
      }, (resp) => emit({event: 'receipt_answered', message_id: messageId, status: resp.command_status}));
    }
  });
});

server.listen(0, '127.0.0.1', () => emit({event: 'listening', port: server.address().port}));

readline.createInterface({input: process.stdin}).on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'quit') {
    for (const s of server.sessions) s.destroy();
    server.close(() => process.exit(0));
    return;
  }
  if (cmd.cmd === 'mo') {
    if (!bound) {
      emit({event: 'mo_refused', reason: 'no bound session'});
      return;
    }
    const message = cmd.udh ? {udh: Buffer.from(cmd.udh, 'hex'), message: cmd.text} : cmd.text;
    bound.deliver_sm({source_addr: cmd.source, destination_addr: cmd.dest, short_message: message},
      (resp) => emit({event: 'mo_answered', status: resp.command_status}));
  }
});
process.stdin.on('end', () => process.exit(0));
