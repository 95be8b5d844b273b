/* Fuzzes the Gemini provider's wire code: answers, errors, the JSON Schema rewriter of tool
 * parameters (tools_wire, clean_schema) and requests. See ai_provider.h. */
#include "../../plugins/ai_gemini/gemini.c"

#define FUZZ_TOOLS(t) tools_wire(t)
#include "ai_provider.h"
