/* Fuzzes the Gemini provider's wire code: answers, errors, the JSON Schema rewriter of tool
 * parameters (gemini_tools_wire, clean_schema) and requests. See ai_provider.h. */
#include "../../plugins/ai_gemini/gemini.c"
#include "../../plugins/ai_gemini/gemini_schema.c"

#define FUZZ_TOOLS(t) gemini_tools_wire(t)
#include "ai_provider.h"
