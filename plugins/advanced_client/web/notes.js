// Collaborative notes: a Y.Doc per note, edited in CodeMirror (the vendored editor
// bundle: yCollab gives remote cursors with names and a per-user undo manager), carried
// over the v1 collaboration socket in the y-websocket protocol:
//   [0, 0, state vector] sync step 1   [0, 1, update] sync step 2   [0, 2, update] update
//   [1, awareness update] cursors and presence                     [3] query awareness
// The socket opens with a single-use ticket from this plugin (api/notes/<id>/ticket), so
// no access token ever appears in a URL; a reconnect asks for a new ticket.
import {
  Awareness, Y, awarenessProtocol, createEditor, decoding, encoding, syncProtocol,
} from "/_app/vendor/editor.js";

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_QUERY_AWARENESS = 3;

export class NoteConnection {
  /**
   * getTicket(): resolves to the plugin's ticket answer ({ws_path, user, role, ...}).
   * onStatus(state, detail): "connecting" | "online" | "offline" | "closed".
   * onPeers(list of {name, color, me}).
   */
  constructor(element, getTicket, {onStatus, onPeers, onText} = {}) {
    this.doc = new Y.Doc();
    this.text = this.doc.getText("content");
    this.awareness = new Awareness(this.doc);
    this.getTicket = getTicket;
    this.onStatus = onStatus || (() => {});
    this.onPeers = onPeers || (() => {});
    this.socket = null;
    this.closed = false;
    this.synced = false;
    this.retry = 0;
    this.role = "editor";
    this.view = null;
    this.element = element;

    this.doc.on("update", (update, origin) => {
      if (origin === this) return;  // came from the socket: do not send it back
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      syncProtocol.writeUpdate(encoder, update);
      this.send(encoding.toUint8Array(encoder));
    });
    this.awareness.on("update", ({added, updated, removed}, origin) => {
      const changed = added.concat(updated, removed);
      if (origin !== this) {
        const encoder = encoding.createEncoder();
        encoding.writeVarUint(encoder, MSG_AWARENESS);
        encoding.writeVarUint8Array(encoder,
          awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed));
        this.send(encoding.toUint8Array(encoder));
      }
      this.onPeers(this.peers());
    });
    if (onText) this.text.observe(() => onText(this.text.toString()));
  }

  peers() {
    const out = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      if (state && state.user) {
        out.push({...state.user, me: clientId === this.doc.clientID});
      }
    }
    return out;
  }

  async connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    let ticket;
    try {
      ticket = await this.getTicket();
    } catch (err) {
      this.onStatus("offline", err.message);
      this.later();
      return;
    }
    this.role = ticket.role;
    if (!this.view) {
      const {name, color} = ticket.user;
      this.awareness.setLocalStateField("user", {name, color, colorLight: color + "33"});
      this.view = createEditor(this.element, {
        language: "markdown", ytext: this.text, awareness: this.awareness,
        readOnly: ticket.role === "viewer",
      });
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${ticket.ws_path}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 0;
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      syncProtocol.writeSyncStep1(encoder, this.doc);
      socket.send(encoding.toUint8Array(encoder));
      if (this.awareness.getLocalState() !== null) {
        const aware = encoding.createEncoder();
        encoding.writeVarUint(aware, MSG_AWARENESS);
        encoding.writeVarUint8Array(aware, awarenessProtocol.encodeAwarenessUpdate(
          this.awareness, [this.doc.clientID]));
        socket.send(encoding.toUint8Array(aware));
      }
      this.onStatus("online");
    };
    socket.onmessage = (event) => this.receive(new Uint8Array(event.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.synced = false;
      // Others' cursors are stale without the socket; ours stays for the reconnect.
      const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID);
      awarenessProtocol.removeAwarenessStates(this.awareness, others, this);
      if (this.closed) { this.onStatus("closed"); return; }
      // 44xx: the server refused us (not a member, gone, too many sockets): say why.
      if (event.code >= 4400 && event.code < 4500 && event.code !== 4429) {
        this.onStatus("offline", event.reason || `closed (${event.code})`);
        if (event.code === 4410 || event.code === 4403) return;
      } else {
        this.onStatus("offline", "reconnecting…");
      }
      this.later();
    };
  }

  later() {
    if (this.closed) return;
    const delay = Math.min(15000, 500 * 2 ** this.retry++) * (0.75 + Math.random() / 2);
    setTimeout(() => this.connect(), delay);
  }

  receive(data) {
    const decoder = decoding.createDecoder(data);
    const kind = decoding.readVarUint(decoder);
    if (kind === MSG_SYNC) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      const step = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
      if (step === syncProtocol.messageYjsSyncStep2) this.synced = true;
      if (encoding.length(encoder) > 1) this.send(encoding.toUint8Array(encoder));
    } else if (kind === MSG_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), this);
    } else if (kind === MSG_QUERY_AWARENESS) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_AWARENESS);
      encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(
        this.awareness, [...this.awareness.getStates().keys()]));
      this.send(encoding.toUint8Array(encoder));
    }
  }

  send(bytes) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(bytes);
    // Offline: the edit stays in the Y.Doc and goes with sync step 1/2 on reconnect.
  }

  destroy() {
    this.closed = true;
    awarenessProtocol.removeAwarenessStates(this.awareness, [this.doc.clientID], "closing");
    if (this.socket) this.socket.close(1000, "note closed");
    if (this.view) this.view.destroy();
    this.view = null;
    this.doc.destroy();
  }
}
