# TEST DOUBLE, not Xilinx/AMD software: see tests/standin_xilinx/README.md.
#
# One Tcl file behind every stand-in binary of this tree (vivado_hls, vitis_hls, vitis-run,
# vivado). It runs the project's own Tcl script (hls4ml's build_prj.tcl, vivado_synth.tcl) in
# this real Tcl interpreter, with the tools' commands (open_project, csynth_design, ...) defined
# below as procedures that record each call and lay down REAL reports copied from fixtures/.
# It makes up no figure: every report and progress line it writes was written by a real tool.
#
# Called by the thin wrappers as:  tclsh standin.tcl <tool> <install version> <tool args...>
# It writes only into the working directory, so the tree may be mounted read-only.

namespace eval ::standin {
    variable here [file dirname [file normalize [info script]]]
    variable tool [lindex $::argv 0]
    variable install [lindex $::argv 1]
    variable toolargs [lrange $::argv 2 end]
    variable version $install
    if {[info exists ::env(STANDIN_VERSION)] && $::env(STANDIN_VERSION) ne ""} {
        set version $::env(STANDIN_VERSION)
    }
    variable delay 0.05
    if {[info exists ::env(STANDIN_DELAY)] && $::env(STANDIN_DELAY) ne ""} { set delay $::env(STANDIN_DELAY) }
    variable mode ok
    if {[info exists ::env(STANDIN_MODE)] && $::env(STANDIN_MODE) ne ""} { set mode $::env(STANDIN_MODE) }
    variable fixtures [file join $here fixtures]
    if {[info exists ::env(STANDIN_FIXTURES)] && $::env(STANDIN_FIXTURES) ne ""} {
        set fixtures [file normalize $::env(STANDIN_FIXTURES)]
    }
    # Vivado HLS (2018.2, 2020.1) or Vitis HLS (2024.1): which real report set an install copies.
    variable vitis [expr {$tool in {vitis_hls vitis-run} || [string match 2024.* $install]}]
    variable set [expr {$vitis ? "vitis_hls_$install" : "vivado_hls_$install"}]
    # Only 2020.1 and Vitis 2024.1 came with a real vivado_synth.rpt; 2018.2 borrows 2020.1's.
    variable vsynth_report [file join $fixtures $set vivado_synth.rpt]
    if {$install eq "2018.2"} { set vsynth_report [file join $fixtures vivado_hls_2020.1 vivado_synth.rpt] }

    variable project ""     ;# open_project's folder
    variable solution ""    ;# open_solution's name
    variable top ""         ;# set_top
    variable logs {}        ;# channels that get every line printed on stdout
    variable pending ""     ;# what was printed before the solution log could be opened
    variable calls ""       ;# channel of the calls record
    variable designs 0      ;# *_design commands run so far
}

rename ::puts ::standin::tcl_puts
rename ::exit ::standin::tcl_exit

# ------------------------------------------------------------------ output

proc ::standin::emit {text {nonewline 0}} {
    variable logs
    variable pending
    variable solution
    set line [expr {$nonewline ? $text : "$text\n"}]
    tcl_puts -nonewline stdout $line
    flush stdout
    foreach chan $logs { tcl_puts -nonewline $chan $line; flush $chan }
    if {$solution eq ""} { append pending $line }
}

# Tcl errors go to stderr, as tclsh prints them, and into the logs, as the real tools keep them.
proc ::standin::emit_error {text} {
    variable logs
    tcl_puts stderr $text
    flush stderr
    foreach chan $logs { tcl_puts $chan $text; flush $chan }
}

# The script's `puts` to stdout is the tool's output: it goes to the logs as well.
proc ::puts {args} {
    set words $args
    set nonewline 0
    if {[lindex $words 0] eq "-nonewline"} { set nonewline 1; set words [lrange $words 1 end] }
    if {[llength $words] == 1} {
        ::standin::emit [lindex $words 0] $nonewline
        return
    }
    if {[llength $words] == 2 && [lindex $words 0] eq "stdout"} {
        ::standin::emit [lindex $words 1] $nonewline
        return
    }
    tailcall ::standin::tcl_puts {*}$args
}

proc ::standin::json {text} {
    set out ""
    foreach ch [split $text ""] {
        scan $ch %c code
        if {$ch eq "\""} { append out "\\\"" } elseif {$ch eq "\\"} { append out "\\\\" } elseif {$code < 0x20} {
            append out [format "\\u%04x" $code]
        } else { append out $ch }
    }
    return "\"$out\""
}

# One JSON line per tool command the script ran: {"tool": ..., "command": ..., "args": [...]}.
proc ::standin::record {command arguments} {
    variable calls
    variable tool
    if {$calls eq ""} {
        set calls [open vivado_hls_standin_calls.log a]
        fconfigure $calls -encoding utf-8
    }
    set items {}
    foreach a $arguments { lappend items [json $a] }
    tcl_puts $calls "{\"tool\": [json $tool], \"command\": [json $command], \"args\": \[[join $items {, }]\]}"
    flush $calls
}

proc ::standin::finish {} {
    variable logs
    variable calls
    foreach chan $logs { catch {close $chan} }
    set logs {}
    if {$calls ne ""} { catch {close $calls}; set calls "" }
}

proc ::exit {{code 0}} {
    ::standin::record exit [list $code]
    ::standin::finish
    ::standin::tcl_exit $code
}

proc ::standin::fail {message} {
    emit "ERROR: $message"
    return -level 2 -code error $message
}

# Copied by content, not `file copy`, which keeps the source's mtime: a rewritten report must look
# rewritten to whoever compares (size, mtime) before and after a run, as hlsflow does.
proc ::standin::copy_file {src dest} {
    set in [open $src rb]
    set out [open $dest wb]
    fcopy $in $out
    close $in
    close $out
}

proc ::standin::copy {name dest} {
    variable fixtures
    variable set
    copy_file [file join $fixtures $set $name] $dest
}

# ------------------------------------------------------------------ modes

# STANDIN_MODE=fail/hang act at the first design step (csim, csynth, cosim, export), as a
# compile error or a stuck synthesis would; crash dies during csynth_design's progress lines.
proc ::standin::design_step {} {
    variable mode
    variable designs
    incr designs
    if {$designs > 1} { return }
    if {$mode eq "fail"} {
        emit "ERROR: \[HLS 200-70\] Compilation errors found: (STANDIN_MODE=fail)"
        return -level 2 -code error "STANDIN_MODE=fail"
    }
    if {$mode eq "hang"} { hang }
}

# A stuck synthesis is a process tree (the real vivado_hls runs its compilers as children): hang
# starts one child, marked `standin-hang <working directory>` in its command line, and waits with
# it for ever. Whoever stops the run must stop the whole process group, or the child stays;
# tests look for the mark in /proc. A bash `exec -a` names it; it is a tclsh that waits too.
proc ::standin::hang {} {
    set child [exec bash -c {exec -a "$0" "$1"} "standin-hang [pwd]" [info nameofexecutable] \
        << "vwait forever" >& /dev/null &]
    emit "INFO: \[STAND-IN\] STANDIN_MODE=hang: this design step never returns; child $child\
        (standin-hang [pwd]) waits with it."
    vwait ::standin::forever
}

proc ::standin::crash {} {
    flush stdout
    finish
    # The wrapper set `ulimit -c 0`: no core file lands in the user's directory.
    exec /bin/sh -c "kill -SEGV [pid]"
    vwait ::standin::forever
}

# The real `Finished <stage> Time (s): ...` lines of the 2018.2 run, one every STANDIN_DELAY s.
proc ::standin::progress {} {
    variable fixtures
    variable delay
    variable mode
    set f [open [file join $fixtures vivado_hls_2018.2 solution1.log]]
    set lines [split [read $f] "\n"]
    close $f
    set count 0
    foreach line $lines {
        if {![string match "*Finished * Time (s):*" $line]} { continue }
        emit $line
        incr count
        if {$mode eq "crash" && $count == 3} { crash }
        after [expr {int($delay * 1000)}]
    }
}

proc ::standin::need_solution {command} {
    variable project
    variable solution
    if {$project eq ""} { fail "\[STAND-IN\] $command: no project is open (open_project first)." }
    if {$solution eq ""} { fail "\[STAND-IN\] $command: no solution is open (open_solution first)." }
    return [file join $project $solution]
}

# ------------------------------------------------------------------ Vivado HLS / Vitis HLS commands

proc ::open_project {args} {
    ::standin::record open_project $args
    set name [lindex $args end]
    if {$name eq "" || [string match -* $name]} { ::standin::fail "\[STAND-IN\] open_project needs a project name." }
    set ::standin::project $name
    file mkdir $name
    set app [expr {$::standin::vitis ? "hls.app" : "vivado_hls.app"}]
    ::standin::copy $app [file join $name $app]
    ::standin::emit "INFO: \[STAND-IN\] open_project $name (copied the real $::standin::set $app)"
}

proc ::open_solution {args} {
    ::standin::record open_solution $args
    set name [lindex $args end]
    if {$::standin::project eq ""} { ::standin::fail "\[STAND-IN\] open_solution: no project is open (open_project first)." }
    set dir [file join $::standin::project $name]
    file mkdir $dir
    # The solution log is appended to, run after run; it starts with this run's banner.
    set chan [open [file join $dir $name.log] a]
    ::standin::tcl_puts -nonewline $chan $::standin::pending
    flush $chan
    lappend ::standin::logs $chan
    set ::standin::solution $name
    set ::standin::pending ""
}

proc ::set_top {name} {
    ::standin::record set_top [list $name]
    set ::standin::top $name
}

# Commands that only set something up: recorded, nothing else.
foreach command {
    add_files set_part create_clock set_clock_uncertainty set_directive_interface set_directive_pipeline
    set_directive_unroll set_directive_dataflow set_directive_inline config_array_partition config_compile
    config_schedule config_interface config_dataflow config_rtl config_export config_core config_op
    config_bind config_unroll config_storage config_csim config_cosim config_debug config_sdx
    config_flow close_solution delete_solution
} {
    proc ::$command {args} "::standin::record $command \$args"
}

proc ::close_project {args} {
    ::standin::record close_project $args
    set ::standin::project ""
    set ::standin::solution ""
}

proc ::csim_design {args} {
    ::standin::record csim_design $args
    ::standin::need_solution csim_design
    ::standin::design_step
    ::standin::emit "INFO: \[STAND-IN\] csim_design recorded; the stand-in compiles and runs no C simulation."
}

proc ::csynth_design {args} {
    ::standin::record csynth_design $args
    set dir [::standin::need_solution csynth_design]
    ::standin::design_step
    set top $::standin::top
    if {$top eq ""} { ::standin::fail "\[STAND-IN\] csynth_design: no top function (set_top first)." }
    ::standin::progress
    if {$::standin::mode eq "crash"} { ::standin::crash }
    # What Vivado logic synthesis (vivado_synth.tcl) reads; the stand-in writes no RTL into it.
    file mkdir [file join $dir syn verilog]
    if {$::standin::mode ne "ok"} { return }
    set reports [file join $dir syn report]
    file mkdir $reports
    ::standin::copy myproject_csynth.xml [file join $reports ${top}_csynth.xml]
    ::standin::copy myproject_csynth.rpt [file join $reports ${top}_csynth.rpt]
    if {$::standin::vitis} {
        # Vitis HLS 2020.2+ writes a larger combined csynth.xml beside the top's.
        ::standin::copy csynth.xml [file join $reports csynth.xml]
    }
    ::standin::emit "INFO: \[STAND-IN\] csynth_design copied the real $::standin::set reports to $reports"
}

# No real co-simulation output exists among the fixtures, so none is imitated.
proc ::cosim_design {args} {
    ::standin::record cosim_design $args
    ::standin::need_solution cosim_design
    ::standin::design_step
    ::standin::fail "\[STAND-IN\] cosim_design is not imitated: the stand-in has no real co-simulation output to copy."
}

proc ::export_design {args} {
    ::standin::record export_design $args
    ::standin::need_solution export_design
    ::standin::design_step
    ::standin::emit "INFO: \[STAND-IN\] export_design recorded; the stand-in packages no IP."
}

# ------------------------------------------------------------------ Vivado commands (vivado_synth.tcl)

proc ::standin::define_vivado {} {
    foreach command {
        read_verilog read_vhdl read_xdc synth_design opt_design place_design route_design
        report_timing_summary write_checkpoint close_design close_project link_design
    } {
        proc ::$command {args} "::standin::record $command \$args"
    }
    proc ::add_files {args} {
        ::standin::record add_files $args
        foreach path $args {
            if {![string match -* $path] && ![file exists $path]} {
                ::standin::fail "\[filemgmt 56-12\] File '$path' does not exist (stand-in)."
            }
        }
    }
    proc ::report_utilization {args} {
        ::standin::record report_utilization $args
        set i [lsearch -exact $args -file]
        if {$i < 0 || $::standin::mode ne "ok"} { return }
        ::standin::copy_file $::standin::vsynth_report [lindex $args [expr {$i + 1}]]
        ::standin::emit "INFO: \[STAND-IN\] report_utilization copied the real [file tail [file dirname $::standin::vsynth_report]] vivado_synth.rpt"
    }
}

# ------------------------------------------------------------------ the run

proc ::standin::version_line {} {
    variable tool
    variable version
    switch -- $tool {
        vivado_hls { return "Vivado(TM) HLS - High-Level Synthesis from C, C++ and SystemC v$version (64-bit)" }
        vivado { return "Vivado STAND-IN v$version (64-bit): a test double, not Xilinx Vivado" }
        default { return "Vitis HLS STAND-IN v$version (64-bit): a test double, not AMD Vitis HLS" }
    }
}

proc ::standin::banner {} {
    variable tool
    variable version
    emit "=============================================================="
    if {$tool eq "vivado_hls"} {
        emit "File generated by Vivado(TM) HLS - High-Level Synthesis from C, C++ and SystemC"
        emit "Version: $version"
        emit "Copyright (C) 1986-[string range $version 0 3] Xilinx, Inc. All Rights Reserved."
    } else {
        emit "File generated by the [version_line]"
        emit "Version: $version"
    }
    emit ""
    emit "=============================================================="
    emit ""
}

proc ::standin::usage {text} {
    tcl_puts stderr "ERROR: $text"
    tcl_exit 2
}

proc ::standin::main {} {
    variable tool
    variable toolargs
    variable mode
    variable fixtures
    variable set
    variable here
    variable install

    fconfigure stdout -buffering line
    set what [dict get {vivado_hls "Xilinx Vivado HLS" vitis_hls "AMD Vitis HLS" vitis-run "AMD vitis-run"
                        vivado "Xilinx Vivado"} $tool]
    set notice "$tool STAND-IN (test double from tests/standin_xilinx): not $what; it runs the Tcl script\
        with recording commands and lays down real reports copied from its fixtures."
    # hls4ml runs `exec vivado ... >@ stdout`, which fails on any stderr output: vivado says it on stdout.
    tcl_puts [expr {$tool eq "vivado" ? "stdout" : "stderr"}] $notice
    flush stderr

    if {[lindex $toolargs 0] in {-version --version}} {
        tcl_puts [version_line]
        tcl_exit 0
    }
    if {![file isfile [file join $fixtures vivado_hls_2018.2 solution1.log]] || ![file isdir [file join $fixtures $set]]} {
        usage "stand-in fixtures not found at '$fixtures' (need vivado_hls_2018.2/ and $set/): mount the stand-in tree whole or set STANDIN_FIXTURES."
    }
    if {$mode ni {ok fail hang noreport crash}} {
        usage "unknown STANDIN_MODE '$mode' (use ok, fail, hang, noreport or crash)."
    }

    # Which script: `-f <script> [args]` (vivado_hls, vitis_hls), `--tcl <script> --mode hls`
    # (vitis-run), `-mode batch -source <script>` (vivado).
    set script ""
    switch -- $tool {
        vivado_hls - vitis_hls {
            if {[lindex $toolargs 0] eq "-f" && [llength $toolargs] >= 2} { set script [lindex $toolargs 1] }
            set hint "'$tool -version' and '$tool -f <script.tcl> \[args\]'"
        }
        vitis-run {
            set i [lsearch -exact $toolargs --tcl]
            set m [lsearch -exact $toolargs --mode]
            if {$i >= 0 && $m >= 0 && [lindex $toolargs [expr {$m + 1}]] eq "hls"} {
                set script [lindex $toolargs [expr {$i + 1}]]
            }
            set hint "'vitis-run --version' and 'vitis-run --mode hls --tcl <script.tcl>'"
        }
        vivado {
            set i [lsearch -exact $toolargs -source]
            if {$i >= 0 && [lindex $toolargs [expr {[lsearch -exact $toolargs -mode] + 1}]] eq "batch"} {
                set script [lindex $toolargs [expr {$i + 1}]]
            }
            set hint "'vivado -version' and 'vivado -mode batch -source <script.tcl>'"
        }
    }
    if {$script eq ""} { usage "the stand-in only supports $hint." }

    # One line per run, arguments joined by single spaces (kept for older tests).
    if {$tool eq "vivado_hls"} {
        set f [open vivado_hls_standin.args a]
        tcl_puts $f [join $toolargs " "]
        close $f
    }

    # `exec vivado ...` in build_prj.tcl (vsynth) finds the Vivado of this version in this tree.
    set vivado_bin [file join $here Vivado $install bin]
    if {[file isdir $vivado_bin]} {
        set ::env(PATH) [expr {[info exists ::env(PATH)] ? "$vivado_bin:$::env(PATH)" : $vivado_bin}]
    }

    set logname [dict get {vivado_hls vivado_hls.log vitis_hls vitis_hls.log vitis-run vitis_hls.log vivado vivado.log} $tool]
    set log [open $logname w]  ;# a fresh log per run, as the real tools start one
    lappend ::standin::logs $log
    # The logs say what wrote them too, first thing (hlsflow's report looks there for a test double).
    tcl_puts $log $notice
    append ::standin::pending "$notice\n"

    if {$tool eq "vivado"} { define_vivado }
    # The script sees the tool's arguments, as in the real tools ([lindex $::argv 1] is the script).
    set ::argv $toolargs
    set ::argc [llength $toolargs]
    set ::argv0 $tool

    banner
    variable script_path $script
    # The real vivado_hls sources `[lindex $::argv 1]`; its error traces show that line.
    if {[lindex $::argv 1] eq $script} {
        set failed [catch {uplevel #0 { source [lindex $::argv 1] }} message]
    } else {
        set failed [catch {uplevel #0 { source $::standin::script_path }} message]
    }
    if {$failed} {
        emit_error $message
        emit_error [join [lrange [split $::errorInfo "\n"] 1 end] "\n"]
        ::exit 1
    }
    ::exit 0
}

::standin::main
