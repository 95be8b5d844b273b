/*
 * Fake AI provider servers for tests: an in-process HTTP server on 127.0.0.1 (libmicrohttpd,
 * a thread per connection) that speaks one provider's real wire format
 * (docs/AI_PROVIDERS.md), validates requests the way the real service does and answers
 * scripted replies. The plugin under test talks to it with its real HTTP code (libcurl).
 *
 * Endpoints:
 *   FAKE_GEMINI  POST /v1beta/models/{model}:generateContent, key in header x-goog-api-key
 *   FAKE_COHERE  POST /v2/chat, header Authorization: Bearer KEY
 *   FAKE_OPENAI  POST /v1/chat/completions (OpenAI-compatible: llama.cpp, Ollama, vLLM),
 *                header Authorization: Bearer KEY only when started with a non-NULL key
 *
 * Checks made on every request, in this order (each refusal is recorded, see
 * fake_ai_last_violation, and does NOT use up a scripted reply):
 *   1. path and method: anything else answers 404 in the provider's error shape.
 *   2. the key. Gemini: missing header -> 403 PERMISSION_DENIED; wrong key -> 400
 *      INVALID_ARGUMENT with details[{"@type":".../google.rpc.ErrorInfo",
 *      "reason":"API_KEY_INVALID"}]. Cohere: missing -> 401 {"id","message":"no api key
 *      supplied"}; wrong -> 401 {"id","message":"invalid api token"}. OpenAI (only when
 *      started with a non-NULL key; with NULL any or no Authorization is accepted, as a local
 *      server): missing -> 401 {"error":{"message","type":"invalid_request_error",
 *      "param":null,"code":null}}; wrong -> 401 code "invalid_api_key" (the message quotes
 *      the key masked, as the real service does).
 *   3. the body: not JSON, or not the provider's format -> 400 in the provider's error shape.
 *      Gemini: only known fields (camelCase or snake_case, as proto JSON); contents[]
 *      non-empty; roles "user"/"model" only; every part has exactly one of
 *      text/functionCall/functionResponse (thoughtSignature allowed beside functionCall,
 *      "thought" beside text); functionCall{name,args object,id?}; functionResponse{name,
 *      response object, id?}; a user turn with functionResponse parts follows a model turn
 *      with functionCall parts, has exactly as many and the same names (and ids, when the
 *      calls had ids); every thoughtSignature the fake sent with a functionCall comes back
 *      unchanged in that call's part, and no unknown signature is sent; systemInstruction is
 *      {parts:[{text}]}; tools[].functionDeclarations[] {name, description?, parameters?}
 *      with no $schema / additionalProperties / const anywhere in parameters, and, as the
 *      real service checks: only the Schema fields Gemini knows, type one of STRING NUMBER
 *      INTEGER BOOLEAN ARRAY OBJECT NULL (any case), an OBJECT's "properties" not empty
 *      when given, an ARRAY has "items", every "required" name is in "properties"; function
 *      names [A-Za-z_][A-Za-z0-9_.:-]{0,63};
 *      toolConfig.functionCallingConfig.mode AUTO|ANY|NONE; generationConfig fields known,
 *      temperature a number in [0,2], maxOutputTokens a positive integer.
 *      Cohere: only known top-level fields; model a non-empty string; stream absent or false;
 *      messages[] non-empty, roles system|user|assistant|tool; system/user content a string
 *      or [{type:"text",text}]; assistant has content or tool_calls, tool_calls[] are
 *      {id, type:"function", function{name, arguments: STRING}}; a tool message has a
 *      tool_call_id of a call of the preceding assistant turn and content a string or an
 *      array of {type:"text"|"document"}; every call of an assistant turn gets exactly one
 *      tool message before the next turn; tools[] are {type:"function", function{name,
 *      description?, parameters object}}; temperature a number, max_tokens a positive int.
 *      OpenAI: only known top-level fields; model a non-empty string; stream absent or false;
 *      messages[] non-empty, roles system|developer|user|assistant|tool; system/user content a
 *      string or [{type:"text",text}]; an assistant has content (string or null) or
 *      tool_calls[] {id, type:"function", function{name, arguments: STRING}}; a tool message
 *      {tool_call_id, content a string or text parts} answers a call of the preceding
 *      assistant turn, once; every call is answered before the next turn; tools[] are
 *      {type:"function", function{name, description?, parameters object?, strict?}};
 *      tool_choice "none"|"auto"|"required"|{type:"function",function{name}}, only with
 *      tools; temperature a number in [0,2]; max_tokens a positive integer.
 *   Errors are {"error":{"message","type","param","code"}} with the status.
 *
 * Scripted replies are used in order, one per accepted request; when none is left the fake
 * answers a plain text "ok". Success bodies have the real shape; usage is always
 * FAKE_AI_IN_TOKENS / FAKE_AI_OUT_TOKENS (Cohere: billed_units; tokens.input_tokens is
 * FAKE_AI_COHERE_RAW_IN, as the real service counts its prompt template there; OpenAI:
 * usage{prompt_tokens, completion_tokens, total_tokens}).
 *
 * With FAKE_AI_TRACE set in the environment, every exchange is printed to stderr.
 *
 * Everything here is thread-safe: the server answers on its own threads.
 */
#ifndef TK_FAKE_AI_H
#define TK_FAKE_AI_H

#include <jansson.h>

typedef enum { FAKE_GEMINI, FAKE_COHERE, FAKE_OPENAI } fake_ai_kind;
typedef struct fake_ai fake_ai;

#define FAKE_AI_IN_TOKENS 12
#define FAKE_AI_OUT_TOKENS 5
#define FAKE_AI_COHERE_RAW_IN 150

/*
 * Starts a server on 127.0.0.1, a free port. api_key: the only key it accepts (FAKE_OPENAI with
 * NULL: no key is checked, as a local server). NULL on failure.
 */
fake_ai *fake_ai_start(fake_ai_kind kind, const char *api_key);
/* "http://127.0.0.1:PORT" (no trailing slash): the plugin's base_url. */
const char *fake_ai_base_url(const fake_ai *f);
/* Stops the server (a hanging reply is cut short) and frees everything, records included. */
void fake_ai_stop(fake_ai *f);

/* ---- scripted replies (queued; each is used by one accepted request) ---- */

/* A plain text answer. Gemini finishReason STOP, Cohere finish_reason COMPLETE, OpenAI stop. */
void fake_ai_text(fake_ai *f, const char *text);
/* A text answer with the provider's finish reason given (e.g. "MAX_TOKENS", "SAFETY";
 * OpenAI "length"). */
void fake_ai_text_finish(fake_ai *f, const char *text, const char *finish_reason);
/*
 * Tool calls. calls_json: a JSON array [{"name":"add_task","args":{...}}, ...]; an item may
 * also carry:
 *   "id": "..."               Gemini: sent as functionCall.id (by default there is none, as
 *                             with the real API); Cohere: the call id (default generated,
 *                             "<name>_fake<N>", unique per server).
 *                             OpenAI: the call id (default generated "call_fake<N>").
 *   "raw_arguments": "..."    Cohere, OpenAI: the arguments string sent verbatim (e.g.
 *                             "{not json").
 *   "object_arguments": true  OpenAI: arguments sent as a JSON object, not a string (as some
 *                             local servers do).
 *   "no_id": true             OpenAI: the call is sent without an "id" (as some local servers).
 *   "thought_signature": "s"  Gemini: this call's signature. By default the FIRST call of the
 *                             reply carries a generated signature and the others none (as the
 *                             real API does with parallel calls); "" means none.
 * Gemini: one functionCall part per item, finishReason STOP (as the real API does).
 * Cohere: finish_reason TOOL_CALL, a tool_plan, tool_calls with arguments as JSON strings.
 * OpenAI: content null, tool_calls with arguments as JSON strings, finish_reason tool_calls.
 */
void fake_ai_tool_calls(fake_ai *f, const char *calls_json);
/* The same with the provider's finish reason given (e.g. OpenAI "stop", as some servers say). */
void fake_ai_tool_calls_finish(fake_ai *f, const char *calls_json, const char *finish_reason);
/*
 * An error with the provider's real error body for that status (400 INVALID_ARGUMENT, 401,
 * 403 PERMISSION_DENIED, 404 NOT_FOUND, 429, 500 INTERNAL, 503 UNAVAILABLE, 504 ...).
 * retry_after_s (429 only, < 0: none): Gemini details[] RetryInfo retryDelay "<s>s" (e.g.
 * "1s", "3.7s") beside a per-minute QuotaFailure; Cohere and OpenAI header Retry-After:
 * ceil(s). OpenAI bodies: {"error":{"message","type","param","code"}} (401 invalid_api_key,
 * 404 model_not_found, 429 rate_limit_exceeded, 5xx server_error; 503 as llama.cpp loading).
 */
void fake_ai_error(fake_ai *f, int status, double retry_after_s);
/* Gemini: 429 RESOURCE_EXHAUSTED whose QuotaFailure quotaId is ...PerDay... (with a
 * retryDelay "30s" too, as the real API sends). Cohere: 429 with a monthly-limit message.
 * OpenAI: 429 code "insufficient_quota". */
void fake_ai_daily_quota(fake_ai *f);
/* Waits ms before answering a text "ok" (cut short by fake_ai_stop). */
void fake_ai_hang(fake_ai *f, int ms);
/* Gemini: HTTP 200, no candidates, promptFeedback.blockReason "SAFETY". OpenAI: HTTP 200,
 * content null, finish_reason "content_filter". (Cohere: finish_reason ERROR.) */
void fake_ai_blocked(fake_ai *f);
/* Cohere: HTTP 200 with finish_reason ERROR (Gemini: finishReason OTHER, no content; OpenAI:
 * HTTP 200 with an {"error":{...}} body and no choices, as a server failing mid-answer). */
void fake_ai_finish_error(fake_ai *f);
/* Gemini: a part {"text":"<thinking>","thought":true} then the answer part {"text":text}.
 * Cohere: a plain text answer. OpenAI: message.reasoning_content (llama.cpp, vLLM) beside the
 * content text. */
void fake_ai_thought(fake_ai *f, const char *text);
/* Any reply: status, one extra header "Name: value" or NULL, body sent verbatim. */
void fake_ai_raw(fake_ai *f, int status, const char *header, const char *body);
/* Scripted replies not used yet. */
int fake_ai_pending(const fake_ai *f);

/* ---- what it received (every request, refused ones included) ---- */

/* Requests received so far. */
int fake_ai_count(const fake_ai *f);
/* Waits until at least n requests arrived; 1 when they did, 0 on timeout. */
int fake_ai_wait_count(const fake_ai *f, int n, int timeout_ms);
/* The i-th request's body (borrowed, valid until fake_ai_stop), NULL if not JSON or no such. */
json_t *fake_ai_request(const fake_ai *f, int i);
/* The i-th request's raw body (borrowed), NULL if no such request. */
const char *fake_ai_request_body(const fake_ai *f, int i);
/* The i-th request's path, e.g. "/v1beta/models/m:generateContent" (borrowed) or NULL. */
const char *fake_ai_request_path(const fake_ai *f, int i);
/* The i-th request's headers as an object, names lower-cased (borrowed) or NULL. */
json_t *fake_ai_request_headers(const fake_ai *f, int i);
/* The i-th request's HTTP status answered (0 while not answered yet). */
int fake_ai_request_status(const fake_ai *f, int i);
/* CLOCK_MONOTONIC seconds when the i-th request arrived (its headers), or -1. */
double fake_ai_request_time(const fake_ai *f, int i);
/* Why the last refused request was refused (borrowed, valid until stop), or NULL. */
const char *fake_ai_last_violation(const fake_ai *f);
/* How many requests were refused as malformed, unauthenticated or misrouted. */
int fake_ai_violation_count(const fake_ai *f);

#endif
