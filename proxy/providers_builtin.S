/* The built-in credential providers (configs/providers/NAME.yaml), embedded so
 * they always match the binary. provider.c lists them by the same names. */
    .macro provider name
    .section .rodata
    .global provider_yaml_\name
    .global provider_yaml_\name\()_end
provider_yaml_\name:
    .incbin "configs/providers/\name\().yaml"
provider_yaml_\name\()_end:
    .byte 0
    .endm

    provider github
    provider anthropic
    provider claude
    provider openai
    provider gemini
    .section .note.GNU-stack,"",@progbits
