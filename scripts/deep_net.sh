#!/bin/sh
# deep_net.sh LAYERS [WIDTH] — prints a .net model of LAYERS tanh layers of
# WIDTH units (64 by default) with an mse loss: the model whose generated C
# measures how compile time grows with depth (docs/internals.md, "Groups").
layers=${1:?usage: deep_net.sh LAYERS [WIDTH]}
width=${2:-64}
echo "# $layers tanh layers of $width units"
echo "input x[$width]"
echo "input y[$width]"
i=1
while [ "$i" -le "$layers" ]; do
    echo "param W$i[$width, $width]"
    echo "param b$i[$width]"
    i=$((i + 1))
done
prev=x
i=1
while [ "$i" -le "$layers" ]; do
    echo "h$i = tanh(W$i · $prev + b$i)"
    prev=h$i
    i=$((i + 1))
done
echo "output $prev"
echo "loss L = mse($prev, y)"
