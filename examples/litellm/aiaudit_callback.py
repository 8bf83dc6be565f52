# Beside the LiteLLM proxy's config.yaml (LiteLLM loads callbacks from files next to it): aiaudit's
# callback, configured from the AIAUDIT_* environment (docs/litellm.md).
from aiaudit.pipeline.litellm.callback import AiauditLogger

aiaudit = AiauditLogger()
