# Sandlot's bash context driver: one shell whose variables, functions, exports and working
# directory persist between runs.
#
# Each command on stdin is a header line "<id> <prelude bytes> <code bytes> <postlude bytes>"
# followed by the three texts: the prelude (written by the server: the run's environment and
# directory) and the postlude (undoing them) are evaluated around the code. Replies go to
# fd 4 as JSON lines: "ready" once, "done" per run with the exit status of its last command.
# The code is sourced, so `declare` stays global and `return` ends the run; SIGINT stops the
# run at its next command (a DEBUG trap returns from the sourced text) and the shell lives on.
exec {__sl_in}<&0 </dev/null
__sl_self=${BASH_SOURCE[0]}
__sl_int=
trap '__sl_int=1' INT
__sl_debug() {
  [[ -n $__sl_int && ${BASH_SOURCE[1]} != "$__sl_self" ]] && return 2
  return 0
}
shopt -s extdebug
trap '__sl_debug' DEBUG
printf '{"type":"ready","pid":%d}\n' "$$" >&4
while IFS=' ' read -r -u "$__sl_in" __sl_id __sl_plen __sl_clen __sl_qlen; do
  __sl_pre= __sl_code= __sl_post=
  ((__sl_plen > 0)) && LC_ALL=C IFS= read -r -d '' -N "$__sl_plen" -u "$__sl_in" __sl_pre
  ((__sl_clen > 0)) && LC_ALL=C IFS= read -r -d '' -N "$__sl_clen" -u "$__sl_in" __sl_code
  ((__sl_qlen > 0)) && LC_ALL=C IFS= read -r -d '' -N "$__sl_qlen" -u "$__sl_in" __sl_post
  __sl_int=
  __sl_rc=0
  eval "$__sl_pre"
  if ((__sl_rc == 0)); then
    . /dev/stdin <<<"$__sl_code" 4>&- {__sl_in}<&-
    __sl_rc=$?
    [[ -n $__sl_int ]] && __sl_rc=130
  fi
  __sl_int=
  eval "$__sl_post"
  printf '{"type":"done","id":%s,"exit_code":%d}\n' "$__sl_id" "$__sl_rc" >&4
done
