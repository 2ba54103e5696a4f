#!/bin/sh
# Stand-in for the official 20-envsubst-on-templates.sh: every
# $NGINX_ENVSUBST_TEMPLATE_DIR/**/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX
# (default /etc/nginx/templates/**/*.template) goes through envsubst into
# $NGINX_ENVSUBST_OUTPUT_DIR (default /etc/nginx/conf.d), keeping the
# sub-directory and dropping the suffix. Only variables that are defined in
# the environment (and whose name matches the regular expression
# NGINX_ENVSUBST_FILTER, if set) are substituted, so nginx's own $host or
# $remote_addr survive. *.stream-template files go to
# $NGINX_ENVSUBST_STREAM_OUTPUT_DIR (default /etc/nginx/stream-conf.d) and a
# stream {} block including them is appended to nginx.conf if missing.

set -e

ME=$(basename "$0")

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

add_stream_block() {
    conffile="/etc/nginx/nginx.conf"

    if grep -q -E "\s*stream\s*\{" "$conffile"; then
        entrypoint_log "$ME: $conffile contains a stream block; include $stream_output_dir/*.conf to enable stream templates"
    else
        # check if the file can be modified, e.g. not on a r/o filesystem
        touch "$conffile" 2>/dev/null || { entrypoint_log "$ME: info: can not modify $conffile (read-only file system?)"; exit 0; }
        entrypoint_log "$ME: Appending stream block to $conffile to include $stream_output_dir/*.conf"
        cat << END >> "$conffile"
# added by "$ME" on "$(date)"
stream {
  include $stream_output_dir/*.conf;
}
END
    fi
}

# names of the defined environment variables matching the filter, as the
# SHELL-FORMAT argument of envsubst: "${A} ${B} "
defined_envs() {
    awk 'END {
        filter = ENVIRON["NGINX_ENVSUBST_FILTER"]
        for (name in ENVIRON) if (name ~ filter) printf "${%s} ", name
    }' < /dev/null
}

render_templates() {
    # $1 template dir, $2 suffix, $3 output dir
    find "$1" -follow -type f -name "*$2" -print | while read -r template; do
        relative_path="${template#"$1/"}"
        output_path="$3/${relative_path%"$2"}"
        subdir=$(dirname "$relative_path")
        # create a subdirectory where the template file exists
        mkdir -p "$3/$subdir"
        entrypoint_log "$ME: Running envsubst on $template to $output_path"
        envsubst "$envs" < "$template" > "$output_path"
    done
}

auto_envsubst() {
    template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    stream_suffix="${NGINX_ENVSUBST_STREAM_TEMPLATE_SUFFIX:-.stream-template}"
    stream_output_dir="${NGINX_ENVSUBST_STREAM_OUTPUT_DIR:-/etc/nginx/stream-conf.d}"

    envs=$(defined_envs)
    [ -d "$template_dir" ] || return 0
    if [ ! -w "$output_dir" ]; then
        entrypoint_log "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
        return 0
    fi
    render_templates "$template_dir" "$suffix" "$output_dir"

    # Print the first file with the stream suffix, this will be false if there are none
    if test -n "$(find "$template_dir" -name "*$stream_suffix" -print -quit)"; then
        mkdir -p "$stream_output_dir"
        if [ ! -w "$stream_output_dir" ]; then
            entrypoint_log "$ME: ERROR: $template_dir exists, but $stream_output_dir is not writable"
            return 0
        fi
        add_stream_block
        render_templates "$template_dir" "$stream_suffix" "$stream_output_dir"
    fi
}

auto_envsubst

exit 0
