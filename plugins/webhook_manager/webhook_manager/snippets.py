"""Verification snippets for receivers, in Python, Node and Go, with this server's header
names and the timestamp window filled in. The secret is never put in a snippet: it is read
from the environment variable ``PLEXICHAT_WEBHOOK_SECRET``."""

from __future__ import annotations

PYTHON = '''import hashlib, hmac, os, time

SECRET = os.environ["PLEXICHAT_WEBHOOK_SECRET"].encode()
TOLERANCE = {tolerance}  # seconds

def verify(headers, raw_body: bytes) -> bool:
    """headers: the request's headers; raw_body: the bytes as received (not re-encoded)."""
    stamp = headers.get("{timestamp}", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
        return False  # missing, or outside the window: a replay
    expected = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + raw_body,
                                    hashlib.sha256).hexdigest()
    # During a secret rotation the header carries two signatures: accept either.
    return any(hmac.compare_digest(expected, sig)
               for sig in headers.get("{signature}", "").split())
'''

NODE = '''const crypto = require("crypto");

const SECRET = process.env.PLEXICHAT_WEBHOOK_SECRET;
const TOLERANCE = {tolerance}; // seconds

// headers: lower-case names (as Node gives them); rawBody: a Buffer of the body as received.
function verify(headers, rawBody) {{
  const stamp = headers["{timestamp_lower}"] || "";
  if (!/^\\d+$/.test(stamp) || Math.abs(Date.now() / 1000 - Number(stamp)) > TOLERANCE) {{
    return false; // missing, or outside the window: a replay
  }}
  const expected = Buffer.from("sha256=" + crypto.createHmac("sha256", SECRET)
    .update(stamp + ".").update(rawBody).digest("hex"));
  // During a secret rotation the header carries two signatures: accept either.
  return (headers["{signature_lower}"] || "").split(/\\s+/).some((sig) => {{
    const given = Buffer.from(sig);
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  }});
}}

module.exports = {{ verify }};
'''

GO = '''package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const tolerance = {tolerance} // seconds

// Verify checks a PlexiChat delivery; rawBody is the body exactly as received.
func Verify(h http.Header, rawBody []byte) bool {{
	stamp := h.Get("{timestamp}")
	sent, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil || math.Abs(float64(time.Now().Unix()-sent)) > tolerance {{
		return false // missing, or outside the window: a replay
	}}
	mac := hmac.New(sha256.New, []byte(os.Getenv("PLEXICHAT_WEBHOOK_SECRET")))
	mac.Write([]byte(stamp + "."))
	mac.Write(rawBody)
	expected := []byte("sha256=" + hex.EncodeToString(mac.Sum(nil)))
	// During a secret rotation the header carries two signatures: accept either.
	for _, sig := range strings.Fields(h.Get("{signature}")) {{
		if hmac.Equal(expected, []byte(sig)) {{
			return true
		}}
	}}
	return false
}}
'''


def snippets(signature_header: str, timestamp_header: str, tolerance: int) -> dict[str, str]:
    """``{"python", "node", "go"}``: a receiver's check for these headers and window."""
    values = {"signature": signature_header, "timestamp": timestamp_header,
              "signature_lower": signature_header.lower(),
              "timestamp_lower": timestamp_header.lower(), "tolerance": int(tolerance)}
    return {"python": PYTHON.format(**values), "node": NODE.format(**values),
            "go": GO.format(**values)}
