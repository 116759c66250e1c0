// ui/js/api.js: the server-sent events parser the live tail reads with.
import test from 'node:test';
import assert from 'node:assert/strict';
import { sseParser } from '../ui/js/api.js';

test('events split across chunks, comments and CRLF', () => {
  const seen = [];
  const feed = sseParser((name, data) => seen.push([name, data]));
  feed(': keep-alive\n\nevent: hello\r\ndata: {"rate"');
  assert.deepEqual(seen, []);
  feed(':5}\r\n\r\nevent: rows\ndata: {"rows":[]}\n\ndata: a\ndata: b\n\n');
  assert.deepEqual(seen, [['hello', '{"rate":5}'], ['rows', '{"rows":[]}'], ['message', 'a\nb']]);
});
