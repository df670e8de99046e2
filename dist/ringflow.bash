# bash completion for ringflow(1).
_ringflow()
{
    local cur prev words cword
    _init_completion || return
    local commands="query load stat admin top record replay help version"
    # The command is the first word that is not a global option (--config FILE).
    local i=1 cmd=""
    while [ $i -lt $cword ]; do
        case "${words[i]}" in
            --config|-c) i=$((i + 2)); continue ;;
            --config=*) i=$((i + 1)); continue ;;
        esac
        cmd="${words[i]}"
        break
    done
    case "$prev" in
        --config|-c|--output|-o|--into) _filedir; return ;;
        --dir|--socket) _filedir; return ;;
        --format) COMPREPLY=($(compgen -W "table csv json line" -- "$cur")); return ;;
    esac
    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "--config --help --version $commands" -- "$cur"))
        return
    fi
    local opts=""
    case "$cmd" in
        query) opts="--dir --url --field --where --from --to --agg --step --group-by --format --stats --help" ;;
        stat) opts="--socket --json --help workers rings listeners errors latency memory series info stages storage dpdk record" ;;
        top) opts="--socket --once --iterations --interval --help" ;;
        admin) opts="--socket --help reload shutdown log-level clear-counters" ;;
        record) opts="--udp --tcp --output --max-bytes --max-files --duration --count --rcvbuf --json --quiet --engine --socket --help" ;;
        replay) opts="--target --transport --speed --protocol --rewrite-timestamps --precision --listener --pcap-port --max-datagram --repeat --json --quiet --print --into --config --workers --tick --help" ;;
        load) opts="--target --transport --protocol --rate --duration --count --series --tags --fields --shape --decimals --payload --critical --seed --timestamps --json --quiet --sockets --burst --help" ;;
    esac
    if [ "$cmd" = admin ] && [ "$prev" = log-level ]; then
        opts="debug info warn error"
    fi
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    [[ "$cur" != -* && "$cmd" = replay ]] && _filedir
}
complete -F _ringflow ringflow
