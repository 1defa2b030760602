// Drives the server over stdio with the official TypeScript MCP client and prints a JSON summary on stdout.
// Client.callTool checks every structuredContent against the tool's outputSchema (ajv), so a schema that no
// longer tells the truth about a result makes the call throw. Usage: node client.mjs PYTHON DB_PATH
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [python, db] = process.argv.slice(2);
const transport = new StdioClientTransport({
  command: python,
  args: ["-m", "mcp_server_sessions.server", "--db", db, "--user", "alice"],
  stderr: "inherit",
});
const client = new Client({ name: "ts-client-test", version: "1.0.0" });
const summary = { tools: [], calls: [], errors: [], rejectsWrongShape: null };
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="; // 1x1

async function ok(name, args) {
  const result = await client.callTool({ name, arguments: args }); // throws if the result breaks the schema
  if (result.isError) throw new Error(`${name} failed: ${result.content[0].text}`);
  summary.calls.push({ tool: name, structured: result.structuredContent });
  return result.structuredContent;
}

async function error(name, args) {
  const result = await client.callTool({ name, arguments: args });
  summary.errors.push({ tool: name, isError: result.isError === true, text: result.content[0].text });
}

await client.connect(transport);
try {
  const { tools } = await client.listTools();
  summary.tools = tools.map((tool) => ({
    name: tool.name,
    hasOutputSchema: Boolean(tool.outputSchema),
    additionalProperties: tool.inputSchema.additionalProperties,
  }));

  await ok("start_session", { session_id: "ts1", name: "From TypeScript", agent: { model: "claude-x" } });
  await ok("record_run", {
    session_id: "ts1",
    input: "What is the weather in Paris?",
    output: "Sunny, 21 degrees.",
    run_id: "ts-run-1",
    tool_calls: [
      { tool_name: "weather", arguments: { city: "Paris" }, result: { temp: 21 }, duration_ms: 12.5 },
      { tool_name: "clock", arguments: {}, result: "noon", is_error: true },
    ],
    metrics: { input_tokens: 10, output_tokens: 5, total_tokens: 15, duration_ms: 300, model: "claude-x" },
  });
  await ok("record_run", { session_id: "ts2", input: "hello", output: "hi" }); // no metrics: nulls in the result
  // a member run with workflow steps and an image: the newer Run fields, checked against the output schema
  await ok("record_run", {
    session_id: "ts1",
    input: "Look it up",
    output: "Found it.",
    parent_run_id: "ts-run-1",
    agent_id: "researcher",
    steps: [{ name: "fetch", input: { q: "Paris" }, output: "21 degrees", status: "completed", duration_ms: 3.5 }],
    attachments: [{ type: "image", mime_type: "image/png", data: PNG, name: "dot.png" }],
  });
  await ok("get_chat_history", { session_id: "ts1", include_tool_messages: true });
  await ok("get_tool_call_history", { session_id: "ts1" });
  await ok("search_previous_sessions", { query: "weather Paris" });
  await ok("list_sessions", { limit: 1 }); // a next_cursor string
  await ok("list_sessions", {});
  await ok("get_session", { session_id: "ts1" });
  await ok("get_session", { session_id: "ts2" }); // null name, agent and summary
  await ok("update_session", { session_id: "ts1", name: "Renamed", state: { step: 2 } });
  await ok("fork_session", { session_id: "ts1", new_session_id: "ts1-fork" });
  await ok("delete_session", { session_id: "ts2" });

  await error("get_session", { session_id: "ts2" });
  await error("update_session", { session_id: "ts1", made_up_flag: true });
  await error("record_run", { session_id: "bad id!", input: "x", output: "y" });

  // The validator that passed the results above must refuse a result of the wrong shape.
  const validate = client.getToolOutputValidator("get_session");
  const wrong = { ...summary.calls.find((call) => call.tool === "get_session").structured, run_count: "two" };
  summary.rejectsWrongShape = !validate(wrong).valid;
} finally {
  await client.close();
}
process.stdout.write(JSON.stringify(summary) + "\n");
