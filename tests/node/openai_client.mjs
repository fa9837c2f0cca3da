// The official openai npm package as a real client of `longctx serve`: streams a chat completion
// and a completion, and checks what the SDK makes of them.
//   node openai_client.mjs BASE_URL API_KEY MODEL_ID     (BASE_URL like http://127.0.0.1:8080/v1)
// Exits 0 when every check passes; prints one line per check and a closing count.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [baseURL, apiKey, model] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  console.error('usage: node openai_client.mjs BASE_URL API_KEY MODEL_ID');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

check('chat.completions streams: role first, then content, finish_reason, usage', async () => {
  const stream = await client.chat.completions.create({
    model,
    messages: [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: 'Tell me about a cat.' },
    ],
    max_tokens: 12,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let first = true;
  let text = '';
  let finish = null;
  let usage = null;
  let id = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    id ??= chunk.id;
    assert.equal(chunk.id, id);
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    const c = chunk.choices[0];
    if (first) assert.equal(c.delta.role, 'assistant');
    first = false;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(['stop', 'length'].includes(finish), `finish_reason ${finish}`);
  assert.ok(usage, 'a usage chunk');
  assert.ok(usage.prompt_tokens > 0);
  assert.ok(usage.completion_tokens > 0 && usage.completion_tokens <= 12);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  if (finish === 'length') assert.equal(usage.completion_tokens, 12);
  assert.ok(text.length > 0, 'some text');
});

check('completions stream the same greedy text a non-streaming request gets', async () => {
  const params = { model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
  const stream = await client.completions.create({ ...params, stream: true });
  let streamed = '';
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    const c = chunk.choices[0];
    if (c.text) streamed += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
  const once = await client.completions.create(params);
  assert.equal(once.choices[0].text, streamed);
  assert.equal(once.choices[0].finish_reason, finish);
  assert.ok(streamed.length > 0);
  assert.equal(once.usage.completion_tokens <= 16, true);
});

check('a prompt beyond the context is a 400 the SDK raises as BadRequestError', async () => {
  await assert.rejects(
    client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 1_000_000 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /context/.test(e.message),
  );
});

check('a wrong key is a 401 the SDK raises as AuthenticationError', async () => {
  const wrong = new OpenAI({ baseURL, apiKey: apiKey + 'x', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});

let passed = 0;
let failed = 0;
for (const [name, fn] of checks) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).replaceAll('\n', '\n  ')}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
