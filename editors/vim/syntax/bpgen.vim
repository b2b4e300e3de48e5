" Vim syntax file
" Language:    bpgen .net models (networks written as equations)
" Maintainer:  the bpgen project
" Every keyword, built-in function and initialiser of the language
" (docs/language.md); tests/test_editors.c checks the lists against the
" compiler's own tables.
if exists("b:current_syntax")
  finish
endif

syn keyword bpgenStatement  model input param const output loss wrt
" `frozen` is a keyword only between `param` and a name
syn match   bpgenStatement  /\(\<param\s\+\)\@<=frozen\ze\s\+\h/

syn keyword bpgenFunction   exp log sqrt abs sin cos tanh sigmoid relu softplus
syn keyword bpgenFunction   step sign max min transpose outer sum mean dot
syn keyword bpgenFunction   logsumexp softmax log_softmax mse cross_entropy
syn keyword bpgenFunction   softmax_cross_entropy bce
syn keyword bpgenFunction   conv2d maxpool2d avgpool2d flatten layernorm

syn keyword bpgenInit       zeros ones normal uniform xavier he
" keyword arguments: conv2d(x, K, b, stride=2, pad=1)
syn match   bpgenArgument   /\<\(stride\|pad\)\ze\s*=/

syn match   bpgenNumber     /\<\d\+\(\.\d*\)\=\([eE][+-]\=\d\+\)\=/
syn match   bpgenNumber     /\.\d\+\([eE][+-]\=\d\+\)\=/
" the matrix product, · (U+00B7) or @, and the other operators
syn match   bpgenMatmul     /·\|@/
syn match   bpgenOperator   /[-+*\/^=]/
syn match   bpgenDelimiter  /[()\[\],;]/

syn keyword bpgenTodo       TODO FIXME XXX NOTE contained
syn match   bpgenComment    /#.*$/ contains=bpgenTodo,@Spell

hi def link bpgenStatement  Statement
hi def link bpgenFunction   Function
hi def link bpgenInit       Constant
hi def link bpgenArgument   Identifier
hi def link bpgenNumber     Number
hi def link bpgenMatmul     Operator
hi def link bpgenOperator   Operator
hi def link bpgenDelimiter  Delimiter
hi def link bpgenTodo       Todo
hi def link bpgenComment    Comment

let b:current_syntax = "bpgen"
