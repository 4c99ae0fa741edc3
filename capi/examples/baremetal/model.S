/* The GGUF model, in flash, read in place by tinymla_model_init. MODEL_PATH comes from -D. */
    .section .rodata.model, "a"
    .balign 32
    .global tinymla_model_start
    .global tinymla_model_end
tinymla_model_start:
    .incbin MODEL_PATH
tinymla_model_end:
