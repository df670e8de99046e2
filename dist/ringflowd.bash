# bash completion for ringflowd(8).
_ringflowd()
{
    local cur prev words cword
    _init_completion || return
    case "$prev" in
        --config|-c|--check-config) _filedir '@(yaml|yml)'; return ;;
    esac
    COMPREPLY=($(compgen -W "--config --check-config --print-config --print-default-config --help --version" -- "$cur"))
}
complete -F _ringflowd ringflowd
