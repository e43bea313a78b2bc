"""Parses a multipart/byteranges body (stdin) with Python's own email parser, so that the
edge's framing is read by code nobody here wrote. argv[1]: the response's Content-Type.
Prints one JSON object per part: its Content-Range and its bytes in hex; exits 1 on a
defect the parser found."""
import email, email.policy, json, sys

content_type = sys.argv[1].encode()
body = sys.stdin.buffer.read()
msg = email.message_from_bytes(b"Content-Type: " + content_type + b"\r\n\r\n" + body, policy=email.policy.HTTP)
if msg.defects or not msg.is_multipart():
    sys.exit("defects: %s, multipart: %s" % (msg.defects, msg.is_multipart()))
for part in msg.iter_parts():
    if part.defects:
        sys.exit("part defects: %s" % part.defects)
    print(json.dumps({"range": part["content-range"], "type": part["content-type"],
                      "hex": part.get_payload(decode=True).hex()}))
