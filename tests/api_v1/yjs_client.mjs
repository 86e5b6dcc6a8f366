// A yjs client of the collaboration socket, as a page runs it (the same yjs, y-protocols
// and lib0 that web-src bundles into /_app/vendor/editor.js), for
// tests/api_v1/test_collaboration.py. Usage: node yjs_client.mjs <web-src dir> <ws url>
// It syncs, prints {"synced": text}, inserts "yjs:" at the start, sends its awareness,
// waits until the text contains "python!" (sent by the test), prints {"final": text} and
// closes. Exit code 77: this Node has no WebSocket (the test is skipped).
import {createRequire} from "node:module";
import path from "node:path";

const [webSrc, url] = process.argv.slice(2);
if (typeof WebSocket === "undefined") process.exit(77);
const require = createRequire(path.join(webSrc, "package.json"));
const Y = require("yjs");
const syncProtocol = require("y-protocols/sync");
const awarenessProtocol = require("y-protocols/awareness");
const encoding = require("lib0/encoding");
const decoding = require("lib0/decoding");

const doc = new Y.Doc();
const text = doc.getText("content");
const awareness = new awarenessProtocol.Awareness(doc);
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
const send = (build) => {
  const encoder = encoding.createEncoder();
  build(encoder);
  ws.send(encoding.toUint8Array(encoder));
};
let synced = false;
const timer = setTimeout(() => { console.log(JSON.stringify({timeout: text.toString()})); process.exit(2); }, 20000);

ws.onopen = () => {
  send((e) => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, doc); });
};
doc.on("update", (update, origin) => {
  if (origin === ws) return;
  send((e) => { encoding.writeVarUint(e, 0); syncProtocol.writeUpdate(e, update); });
});
ws.onmessage = (event) => {
  const decoder = decoding.createDecoder(new Uint8Array(event.data));
  const kind = decoding.readVarUint(decoder);
  if (kind === 0) {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0);
    const step = syncProtocol.readSyncMessage(decoder, encoder, doc, ws);
    if (encoding.length(encoder) > 1) ws.send(encoding.toUint8Array(encoder));
    if (step === 1 && !synced) {
      synced = true;
      console.log(JSON.stringify({synced: text.toString()}));
      text.insert(0, "yjs:");
      awareness.setLocalStateField("user", {name: "yjs"});
      send((e) => {
        encoding.writeVarUint(e, 1);
        encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]));
      });
    }
  } else if (kind === 1) {
    awarenessProtocol.applyAwarenessUpdate(awareness, decoding.readVarUint8Array(decoder), ws);
  }
  if (synced && text.toString().includes("python!")) {
    console.log(JSON.stringify({final: text.toString()}));
    clearTimeout(timer);
    awareness.destroy();  // its renewal interval would keep Node running
    ws.close();
  }
};
ws.onclose = () => process.exit(0);
ws.onerror = () => { console.log(JSON.stringify({error: "socket error"})); process.exit(3); };
