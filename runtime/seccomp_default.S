/* The default seccomp profile (configs/seccomp.json), embedded so the binary
 * works the same from the build tree and once installed. */
    .section .rodata
    .global rt_default_seccomp_json
    .type rt_default_seccomp_json, @object
rt_default_seccomp_json:
    .incbin "configs/seccomp.json"
rt_default_seccomp_json_end:
    .byte 0
    .balign 8
    .global rt_default_seccomp_json_len
    .type rt_default_seccomp_json_len, @object
rt_default_seccomp_json_len:
    .quad rt_default_seccomp_json_end - rt_default_seccomp_json
    .section .note.GNU-stack,"",@progbits
