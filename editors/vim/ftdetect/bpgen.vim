" bpgen .net models: filetype detection.
" setfiletype leaves files another plugin has already claimed alone.
autocmd BufRead,BufNewFile *.net setfiletype bpgen
