# bash completion for mvlan (/usr/share/bash-completion/completions/mvlan).
# The candidates come from mvlan itself: the words typed so far followed by
# --generate-bash-completion print the commands, the flags (after a -) or
# the networks and containers the agent knows.
_mvlan() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
	[[ $cur == -* ]] && words+=("$cur")
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${words[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F _mvlan mvlan
