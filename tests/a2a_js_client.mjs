// Drives `swarm a2a` with the A2A JavaScript SDK (@a2a-js/sdk), for tests/test_a2a_js.py.
// Env: A2A_URL, A2A_TOKEN, A2A_BINDING (JSONRPC or HTTP+JSON), A2A_NODE_MODULES (where the
// SDK is installed). Prints one JSON object per line; after the line {"step": "posted"} it
// waits for the test's worker to take the task, and reads the stream to its end.
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";

const require = createRequire(process.env.A2A_NODE_MODULES + "/");
const { ClientFactory, JsonRpcTransportFactory, RestTransportFactory } =
  require("@a2a-js/sdk/client");

const url = process.env.A2A_URL;
const binding = process.env.A2A_BINDING;
const STATES = ["UNSPECIFIED", "SUBMITTED", "WORKING", "COMPLETED", "FAILED", "CANCELED"];
const say = (obj) => console.log(JSON.stringify(obj));

function factory(token) {
  const fetchImpl = (input, init = {}) => {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
  return new ClientFactory({
    transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
    preferredTransports: [binding],
  });
}

function message(text, contextId = "") {
  return {
    messageId: randomUUID(),
    contextId,
    taskId: "",
    role: 1, // ROLE_USER
    parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "" }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

const request = (msg, returnImmediately = false) => ({
  tenant: "",
  message: msg,
  configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately },
  metadata: undefined,
});

const card = await (await fetch(`${url}/.well-known/agent-card.json`)).json();
say({ step: "card", skills: card.skills.map((s) => s.id), streaming: card.capabilities.streaming });

const client = await factory(process.env.A2A_TOKEN).createFromUrl(url);
const context = randomUUID();
let first = true;
for await (const event of client.sendMessageStream(request(message("from js", context)))) {
  const { $case, value } = event.payload;
  if ($case === "task") say({ step: "event", kind: "task", state: STATES[value.status.state], id: value.id });
  if ($case === "statusUpdate") say({ step: "event", kind: "status", state: STATES[value.status.state] });
  if ($case === "artifactUpdate") {
    const text = value.artifact.parts[0].content.value;
    say({ step: "event", kind: "artifact", text });
  }
  if (first) {
    first = false;
    say({ step: "posted" });
  }
}

const second = await client.sendMessage(request(message("cancel me", context), true));
const cancelled = await client.cancelTask({ tenant: "", id: second.id, metadata: undefined });
say({ step: "cancelled", id: second.id, state: STATES[cancelled.status.state] });
const listed = await client.listTasks({ tenant: "", contextId: context, status: 0, pageToken: "" });
say({ step: "listed", tasks: listed.tasks.map((t) => [t.id, STATES[t.status.state]]) });

try {
  const intruder = await factory("wrong-token").createFromUrl(url);
  await intruder.getTask({ tenant: "", id: second.id });
  say({ step: "refused", refused: false });
} catch (error) {
  say({ step: "refused", refused: true, message: String(error.message || error) });
}
