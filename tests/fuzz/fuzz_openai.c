/* Fuzzes the OpenAI-compatible provider's wire code: answers, errors, tools and requests.
 * See ai_provider.h. */
#include "../../plugins/ai_openai/openai.c"

#define FUZZ_TOOLS(t) aihttp_function_tools(t)
#include "ai_provider.h"
