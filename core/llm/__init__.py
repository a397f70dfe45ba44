"""Language-model backends of LLMSeqPrompt (the paper's second approach, GenItem in the extended paper).

* :mod:`core.llm.prompts`: training examples from train sessions, the paper's chat prompt, title normalisation.
* :mod:`core.llm.local_lm`: an offline causal LM — a small GPT-2 trained from scratch on the train sessions'
  name sequences (not a pretrained LLM), or a user's own Hugging Face model folder fine-tuned with LoRA.
* :mod:`core.llm.openai_finetune`: the OpenAI fine-tuning flow (files, fine_tuning.jobs, chat.completions).
* :mod:`core.llm.mapping`: from 20 sampled names to a top-K list of catalog items.
"""

from core.common import UserError


class LLMError(UserError, RuntimeError):
    """A language-model backend cannot go on (no key, a rejected request, a failed job, a bad model folder);
    the message says why in one sentence, and the CLI prints it without a traceback."""
